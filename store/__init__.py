"""The DuckDB store: schema, numbered migrations, the single writer and the queries."""
