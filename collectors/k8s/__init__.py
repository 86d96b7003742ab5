"""Kubernetes inventory: nodes and pods by list + watch, with their owners."""
