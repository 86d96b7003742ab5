-- Drift monitoring: model inputs as seen in production, references, and drift runs.

-- One row per input feature of one prediction: the `ml.feature.<name>` attributes of an
-- inference span or an inference log record, taken apart at ingest (long format: a drift
-- run reads one model's columns without parsing JSON).
CREATE TABLE features (
    time           TIMESTAMP_NS NOT NULL,
    model_name     VARCHAR NOT NULL,           -- ml.model.name (or gen_ai.request.model)
    model_version  VARCHAR,                    -- ml.model.version, else service.version
    workload       VARCHAR NOT NULL,
    name           VARCHAR NOT NULL,           -- the feature: <name> of ml.feature.<name>
    num            DOUBLE,                     -- a number (booleans as 0/1)
    text           VARCHAR                     -- a string (NULL when num is set)
);

-- A reference dataset per model and version: its statistics, computed once at
-- registration and reused by every run.
CREATE TABLE drift_references (
    reference_id   INTEGER PRIMARY KEY,
    model_name     VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,           -- '*' : every version without its own
    created        TIMESTAMP_NS NOT NULL,
    source         VARCHAR NOT NULL,           -- the file it was read from
    rows           BIGINT NOT NULL,
    active         BOOLEAN NOT NULL            -- the newest for (model, version)
);

CREATE TABLE drift_reference_columns (
    reference_id   INTEGER NOT NULL,
    name           VARCHAR NOT NULL,
    type           VARCHAR NOT NULL,           -- numerical | categorical
    type_source    VARCHAR NOT NULL,           -- inferred | given
    count          BIGINT NOT NULL,            -- values present (not null, not NaN)
    missing        BIGINT NOT NULL,
    n_unique       BIGINT NOT NULL,
    mean           DOUBLE,
    std            DOUBLE,                     -- population std, as Evidently norms by
    min            DOUBLE,
    max            DOUBLE,
    exact          BOOLEAN NOT NULL,           -- values/weights hold every value
    values         DOUBLE[],                   -- numerical: distinct values or quantiles
    weights        DOUBLE[],                   -- their counts (or equal weights)
    categories     VARCHAR[],                  -- categorical: each category
    counts         BIGINT[],                   -- and its count
    PRIMARY KEY (reference_id, name)
);

-- One drift run of a model (and version) over a window of production inputs.
CREATE TABLE drift_runs (
    run_id         INTEGER PRIMARY KEY,
    time           TIMESTAMP_NS NOT NULL,      -- when it ran
    model_name     VARCHAR NOT NULL,
    model_version  VARCHAR,                    -- NULL: every version
    reference_id   INTEGER NOT NULL,
    window_start   TIMESTAMP_NS NOT NULL,
    window_end     TIMESTAMP_NS NOT NULL,
    trigger        VARCHAR NOT NULL,           -- manual | schedule
    rows           BIGINT NOT NULL,            -- production predictions in the window
    status         VARCHAR NOT NULL,           -- drift | no drift | insufficient data
    columns        INTEGER NOT NULL,           -- columns with a verdict
    drifted        INTEGER NOT NULL,
    drift_share    DOUBLE,                     -- drifted / columns; NULL without a verdict
    share_threshold DOUBLE NOT NULL,           -- dataset drift when drift_share >= this
    seconds        DOUBLE NOT NULL,
    report_status  VARCHAR NOT NULL,           -- pending | ready | none | failed
    -- The report itself (~4 MB of HTML) is a file beside the store: <db>.reports/<run_id>.html
    report_note    VARCHAR                     -- what the report was drawn on, or why none
);

CREATE TABLE drift_run_columns (
    run_id         INTEGER NOT NULL,
    name           VARCHAR NOT NULL,
    type           VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,           -- drift | no drift | no data | missing | insufficient data
    method         VARCHAR,                    -- Evidently stat test: wasserstein, jensenshannon, ...
    score          DOUBLE,
    threshold      DOUBLE,
    drifted        BOOLEAN,
    reference_count BIGINT NOT NULL,
    current_count  BIGINT NOT NULL,
    unseen         BIGINT,                     -- categorical: production values not in the reference
    detail         VARCHAR,
    PRIMARY KEY (run_id, name)
);
