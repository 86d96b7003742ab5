"""The cost engine: prices, hourly allocation per workload, unit costs, FOCUS billing."""
