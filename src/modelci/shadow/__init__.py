"""Shadow traffic: a candidate version that an endpoint mirrors a share of its requests to,
whose answers are never returned. `pairs` is the record of one mirrored request (both
answers under one event id) and its batches in the store; `report` compares the two sides;
`control` starts and ends a shadow; `gate` is the `shadow_disagreement` gate at promotion.
The endpoint host's half is `modelci.serve.shadow`."""
