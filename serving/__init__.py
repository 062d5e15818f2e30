"""The real-time scoring API (FastAPI): it serves the MLflow `champion` model at checkout.

The application itself lands with the serving issue; this package is its home.
"""
