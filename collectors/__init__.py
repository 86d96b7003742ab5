"""Collectors: everything that brings data into Onepane (OTLP receivers today)."""
