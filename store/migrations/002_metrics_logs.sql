-- OTLP metric data points: every point type in one table. Gauges and sums fill `value`;
-- histograms, exponential histograms and summaries fill count/sum and their buckets or
-- quantiles. A series is (metric_name, resource_id, scope_name, attributes).
CREATE TABLE metric_points (
    metric_name         VARCHAR NOT NULL,
    metric_type         VARCHAR NOT NULL,   -- gauge | sum | histogram | exponential_histogram | summary
    unit                VARCHAR,
    description         VARCHAR,
    temporality         TINYINT,            -- 1 delta, 2 cumulative; NULL for gauge and summary
    is_monotonic        BOOLEAN,            -- sums only
    start_time          TIMESTAMP_NS,       -- NULL when the sender did not set it
    time                TIMESTAMP_NS NOT NULL,
    value               DOUBLE,             -- gauge/sum; NULL when flagged "no recorded value"
    count               UBIGINT,
    sum                 DOUBLE,
    min                 DOUBLE,
    max                 DOUBLE,
    explicit_bounds     DOUBLE[],           -- histogram
    bucket_counts       UBIGINT[],          -- histogram: one more than explicit_bounds
    scale               INTEGER,            -- exponential histogram
    zero_count          UBIGINT,
    zero_threshold      DOUBLE,
    positive_offset     INTEGER,
    positive_counts     UBIGINT[],
    negative_offset     INTEGER,
    negative_counts     UBIGINT[],
    quantiles           DOUBLE[],           -- summary: quantile i has value quantile_values[i]
    quantile_values     DOUBLE[],
    service_name        VARCHAR NOT NULL,
    service_version     VARCHAR,
    environment         VARCHAR,
    workload            VARCHAR NOT NULL,   -- namespace/name, as for spans
    k8s_namespace       VARCHAR,
    k8s_pod             VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    resource_id         BIGINT NOT NULL,    -- resources.resource_id
    scope_attributes    VARCHAR,            -- JSON object, NULL when empty
    flags               INTEGER NOT NULL,
    attributes          VARCHAR NOT NULL,   -- JSON object, keys sorted, '{}' when none
    exemplars           VARCHAR             -- JSON [{time_unix_nano, value, trace_id, span_id, attributes}]
);

-- OTLP log records; trace_key/trace_id/span_id tie a record to the span it was written in.
CREATE TABLE logs (
    trace_key           BIGINT,             -- as spans.trace_key; NULL outside a trace
    trace_id            VARCHAR,
    span_id             VARCHAR,
    time                TIMESTAMP_NS NOT NULL,  -- time, else observed time, else receive time
    observed_time       TIMESTAMP_NS,
    severity_number     TINYINT NOT NULL,   -- OTLP SeverityNumber 0..24
    severity_text       VARCHAR,
    body                VARCHAR,            -- JSON of the AnyValue body: string, number, map, list
    event_name          VARCHAR,
    flags               INTEGER NOT NULL,
    service_name        VARCHAR NOT NULL,
    service_version     VARCHAR,
    environment         VARCHAR,
    workload            VARCHAR NOT NULL,
    k8s_namespace       VARCHAR,
    k8s_pod             VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    resource_id         BIGINT NOT NULL,
    scope_attributes    VARCHAR,
    attributes          VARCHAR,            -- JSON object, NULL when empty
    dropped_attributes_count INTEGER NOT NULL
);
