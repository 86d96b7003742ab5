-- The cost engine: versioned prices, hourly allocation per pod and per node, the counts
-- unit costs divide by, the workload catalog, and imported FOCUS billing rows.

-- spec.providerID (aws:///eu-west-1a/i-0abc…): how billing rows find their node.
ALTER TABLE k8s_nodes ADD COLUMN provider_id VARCHAR;

-- A price version is one complete price set; it applies to hours that start at or after
-- valid_from, until a later version does. Versions are never edited, so a price change
-- never rewrites past hours.
CREATE TABLE price_versions (
    version     INTEGER PRIMARY KEY,
    valid_from  TIMESTAMP_NS NOT NULL,
    loaded_at   TIMESTAMP_NS NOT NULL,
    currency    VARCHAR NOT NULL,
    digest      VARCHAR NOT NULL             -- sha256 of the rules: unchanged prices add no version
);

CREATE TABLE prices (
    version        INTEGER NOT NULL,
    rule           INTEGER NOT NULL,         -- position within the version
    asset_class    VARCHAR NOT NULL,         -- node | gpu | cpu | ram (the last two: defaults)
    match_field    VARCHAR,                  -- name | provider_id | instance_type | label:KEY
    match_value    VARCHAR,
    region         VARCHAR,                  -- NULL: any region
    capacity_type  VARCHAR,                  -- spot | on-demand; NULL: either
    hourly         DOUBLE NOT NULL,          -- per node-hour, GPU-hour, core-hour or GiB-hour
    source         VARCHAR NOT NULL,         -- where it came from, e.g. "prices.csv line 3"
    PRIMARY KEY (version, rule)
);

-- One row per pod per hour it ran. CPU and memory are charged on max(request, usage);
-- GPUs on physical GPU-hours (a time-sliced request is 1/replicas of a GPU).
CREATE TABLE cost_pod_hours (
    hour             TIMESTAMP_NS NOT NULL,
    pod_uid          VARCHAR NOT NULL,
    namespace        VARCHAR NOT NULL,
    pod              VARCHAR NOT NULL,
    workload         VARCHAR NOT NULL,
    controller_kind  VARCHAR,
    node             VARCHAR,
    hours            DOUBLE NOT NULL,        -- share of the hour the pod ran, 0..1
    cpu_request      DOUBLE,                 -- cores
    cpu_usage        DOUBLE,                 -- average cores used; NULL without usage metrics
    cpu_core_hours   DOUBLE NOT NULL,        -- max(request, usage) × hours
    ram_request      DOUBLE,                 -- bytes
    ram_usage        DOUBLE,
    ram_byte_hours   DOUBLE NOT NULL,
    gpu_hours        DOUBLE NOT NULL,        -- physical GPU-hours
    gpu_utilization  DOUBLE,                 -- 0..1 measured; NULL without GPU samples
    cpu_cost         DOUBLE NOT NULL,
    ram_cost         DOUBLE NOT NULL,
    gpu_cost         DOUBLE NOT NULL,
    gpu_idle_cost    DOUBLE,                 -- gpu_cost × (1 − utilization); NULL when unmeasured
    total_cost       DOUBLE NOT NULL,
    price_version    INTEGER NOT NULL,
    price_source     VARCHAR NOT NULL,
    labels           VARCHAR NOT NULL        -- JSON object: the pod's labels
);

-- One row per node per hour it existed: its cost, what pods were allocated, the idle rest.
-- node_cost = allocated + idle, per resource and in total.
CREATE TABLE cost_node_hours (
    hour                TIMESTAMP_NS NOT NULL,
    node                VARCHAR NOT NULL,
    instance_type       VARCHAR,
    capacity_type       VARCHAR,
    provider_id         VARCHAR,
    hours               DOUBLE NOT NULL,
    cpu_cores           DOUBLE,
    ram_bytes           DOUBLE,
    gpus                DOUBLE,
    node_cost           DOUBLE NOT NULL,
    cpu_cost            DOUBLE NOT NULL,
    ram_cost            DOUBLE NOT NULL,
    gpu_cost            DOUBLE NOT NULL,
    allocated_cpu_cost  DOUBLE NOT NULL,
    allocated_ram_cost  DOUBLE NOT NULL,
    allocated_gpu_cost  DOUBLE NOT NULL,
    idle_cpu_cost       DOUBLE NOT NULL,
    idle_ram_cost       DOUBLE NOT NULL,
    idle_gpu_cost       DOUBLE NOT NULL,
    idle_cost           DOUBLE NOT NULL,
    price_version       INTEGER NOT NULL,
    price_source        VARCHAR NOT NULL
);

-- A node's idle cost: float noise below zero (−1e-17 on a full node) is zero.
CREATE MACRO idle_of(x) AS CASE WHEN x < 0 AND x > -1e-9 THEN 0.0 ELSE x END;

-- What unit costs divide by, per hour, workload, version and pod (from spans).
CREATE TABLE workload_hour_counts (
    hour           TIMESTAMP_NS NOT NULL,
    workload       VARCHAR NOT NULL,
    version        VARCHAR,                  -- service.version
    namespace      VARCHAR,
    pod            VARCHAR,
    spans          BIGINT NOT NULL,
    requests       BIGINT NOT NULL,          -- request and api spans (SERVER spans)
    predictions    BIGINT NOT NULL,          -- inference spans
    runs           BIGINT NOT NULL,          -- pipeline spans that start a trace
    input_tokens   BIGINT,                   -- gen_ai.usage.input_tokens
    output_tokens  BIGINT
);

-- Hours before final_through are final: computed once, never again.
CREATE TABLE cost_rollup_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    final_through  TIMESTAMP_NS
);
INSERT INTO cost_rollup_state VALUES (1, NULL);

-- What the rollups learned about each workload: team and kind from labels, a kind
-- inferred from its spans, when it was seen.
CREATE TABLE workloads (
    workload       VARCHAR PRIMARY KEY,
    namespace      VARCHAR,
    label_team     VARCHAR,
    label_kind     VARCHAR,
    inferred_kind  VARCHAR,
    first_seen     TIMESTAMP_NS,
    last_seen      TIMESTAMP_NS
);

-- The catalog section of onepane.yaml, replaced whenever the server starts.
CREATE TABLE catalog (
    workload  VARCHAR PRIMARY KEY,
    kind      VARCHAR,
    team      VARCHAR,
    unit      VARCHAR                         -- requests | predictions | tokens | runs
);

-- Kind and team per workload: the catalog, else labels, else inferred, else app.
CREATE VIEW workload_identity AS
SELECT coalesce(c.workload, w.workload) AS workload,
       coalesce(c.team, w.label_team) AS team,
       coalesce(c.kind, w.label_kind, w.inferred_kind, 'app') AS kind,
       CASE WHEN c.kind IS NOT NULL THEN 'catalog'
            WHEN w.label_kind IS NOT NULL THEN 'label'
            WHEN w.inferred_kind IS NOT NULL THEN 'inferred'
            ELSE 'default' END AS kind_source,
       c.unit,
       w.first_seen, w.last_seen
FROM workloads w FULL OUTER JOIN catalog c ON c.workload = w.workload;

CREATE TABLE billing_imports (
    import_id    INTEGER PRIMARY KEY,
    file         VARCHAR NOT NULL,
    imported_at  TIMESTAMP_NS NOT NULL,
    rows         BIGINT NOT NULL,
    replaced     BIGINT NOT NULL,             -- rows of earlier imports this one replaced
    periods      VARCHAR NOT NULL             -- JSON [{provider, account, start, end}]
);

-- FOCUS rows. A billing period (provider, account, BillingPeriodStart) comes from one
-- import only: importing it again replaces it.
CREATE TABLE billing_rows (
    import_id               INTEGER NOT NULL,
    row_number              INTEGER NOT NULL,  -- 1 = the first data row of the file
    provider                VARCHAR,
    billing_account_id      VARCHAR,
    billing_period_start    TIMESTAMP_NS NOT NULL,
    billing_period_end      TIMESTAMP_NS NOT NULL,
    charge_period_start     TIMESTAMP_NS NOT NULL,
    charge_period_end       TIMESTAMP_NS,
    charge_category         VARCHAR,
    pricing_category        VARCHAR,
    resource_id             VARCHAR,
    resource_name           VARCHAR,
    service_name            VARCHAR,
    region_id               VARCHAR,
    billing_currency        VARCHAR,
    billed_cost             DOUBLE,
    effective_cost          DOUBLE NOT NULL,
    list_cost               DOUBLE,
    commitment_discount_id  VARCHAR,
    tags                    VARCHAR,           -- JSON object
    extra                   VARCHAR            -- JSON object: x_ columns and other FOCUS columns
);
