-- Spans: one row per span, the columns every view filters on extracted, every attribute kept.
CREATE TABLE spans (
    trace_key           BIGINT NOT NULL,    -- first 8 bytes of the trace id: a fast scan key
    trace_id            VARCHAR NOT NULL,   -- 32 lowercase hex characters
    span_id             VARCHAR NOT NULL,   -- 16 lowercase hex characters
    parent_span_id      VARCHAR,            -- NULL for a root span
    trace_state         VARCHAR,
    name                VARCHAR NOT NULL,
    kind                TINYINT NOT NULL,   -- OTLP SpanKind: 0 unspecified .. 5 consumer
    start_time          TIMESTAMP_NS NOT NULL,
    end_time            TIMESTAMP_NS NOT NULL,
    duration_ns         BIGINT NOT NULL,
    status_code         TINYINT NOT NULL,   -- OTLP StatusCode: 0 unset, 1 ok, 2 error
    status_message      VARCHAR,
    service_name        VARCHAR NOT NULL,
    service_version     VARCHAR,
    environment         VARCHAR,
    workload            VARCHAR NOT NULL,   -- namespace/name
    role                VARCHAR NOT NULL,   -- request | api | inference | db | pipeline | internal
    http_route          VARCHAR,
    http_method         VARCHAR,
    http_status_code    INTEGER,
    db_system           VARCHAR,
    db_operation        VARCHAR,
    db_query_text       VARCHAR,
    model_name          VARCHAR,
    model_version       VARCHAR,
    k8s_namespace       VARCHAR,
    k8s_pod             VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    resource_id         BIGINT NOT NULL,    -- resources.resource_id: the full resource
    scope_attributes    VARCHAR,            -- JSON object, NULL when empty
    attributes          VARCHAR NOT NULL,   -- JSON object of every span attribute
    events              VARCHAR,            -- JSON [{time_unix_nano, name, attributes}]
    links               VARCHAR,            -- JSON [{trace_id, span_id, trace_state, attributes}]
    batch_no            BIGINT NOT NULL     -- the writer's commit sequence number
);

-- Every distinct resource once; spans point at it by a stable hash of its attributes.
CREATE TABLE resources (
    resource_id BIGINT PRIMARY KEY,
    attributes  VARCHAR NOT NULL        -- JSON object of every resource attribute
);

-- One row per trace, folded from spans by the writer about once a second (see
-- store/writer.py): batches of one trace arrive in any order and are merged. No primary key:
-- DuckDB's ART index made every insert and checkpoint cost grow with the table; lookups
-- scan trace_key instead.
CREATE TABLE traces (
    trace_key     BIGINT NOT NULL,
    trace_id      VARCHAR NOT NULL,
    start_time    TIMESTAMP_NS NOT NULL,
    end_time      TIMESTAMP_NS NOT NULL,
    duration_ns   BIGINT NOT NULL,
    root_span_id  VARCHAR,             -- NULL until the root span has arrived
    root_service  VARCHAR,
    root_name     VARCHAR,
    span_count    BIGINT NOT NULL,
    error_count   BIGINT NOT NULL,
    roles         VARCHAR NOT NULL,    -- sorted, comma-separated roles present
    services      VARCHAR NOT NULL     -- sorted, comma-separated service names
);

-- Spans with batch_no up to summarized_through are folded into traces.
CREATE TABLE store_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    summarized_through  BIGINT NOT NULL
);
INSERT INTO store_state VALUES (1, 0);

-- Union of two sorted comma-separated name sets. Lists would be natural, but DuckDB
-- rewrites list columns on UPDATE about 10x slower than VARCHAR.
CREATE MACRO merge_names(a, b) AS
    CASE WHEN a = b THEN a
         ELSE array_to_string(list_sort(list_distinct(string_split(a || ',' || b, ','))), ',')
    END;
