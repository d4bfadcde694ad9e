"""What runs inside a model's own environment or image, and nothing else: the inference
server (`python -m modelci.runtime.server`: the ASGI app, handlers, codecs, batching, metrics),
its Ray Serve application, the training entry points (`python -m modelci.runtime.training` in an
image, `python -m modelci.runtime.ray_driver` on Ray), the `/opt/ml` job layout and the
in-environment half of the probe.

modelci copies this package (with `modelci/__init__.py`) onto the PYTHONPATH of a model's
environment, never installs it there, so it imports only the standard library, what the serving
layer installs (Starlette, uvicorn, prometheus_client, NumPy) and itself: never the rest of
modelci, whose dependencies must not leak into a model.
"""
