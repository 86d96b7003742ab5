"""OTLP receivers: decode OpenTelemetry exports into rows the store can append."""
