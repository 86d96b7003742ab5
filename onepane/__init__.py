"""Onepane: one observability and FinOps layer for app services, ML models and data pipelines."""

__version__ = "0.1.0"
