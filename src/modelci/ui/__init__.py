"""The dashboard (`modelci ui`): server-rendered pages over the registry, with SVG charts made on
the server; templates and the stylesheet ship in this package (nothing from a CDN)."""
