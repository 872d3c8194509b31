"""Serving a trained model: a page to draw on and a prediction API (README: Serve).

`classifier.py` holds the model and prepares images the way `predict` does; `app.py` is the
FastAPI application around it; `page/` is the page, shipped with the package (no CDN).
"""
