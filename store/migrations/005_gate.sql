-- The deploy gate: every decision it made, and every release it gated.

-- One row per decision: `onepane gate check` / `verify`, or the admission webhook.
CREATE TABLE gate_decisions (
    decision_id      INTEGER PRIMARY KEY,
    time             TIMESTAMP_NS NOT NULL,
    action           VARCHAR NOT NULL,          -- check | verify | admission
    workload         VARCHAR NOT NULL,          -- namespace/name
    version          VARCHAR,
    kind             VARCHAR,                   -- app | model | pipeline
    team             VARCHAR,
    environment      VARCHAR NOT NULL,
    verdict          VARCHAR NOT NULL,          -- pass | blocked | overridden | undecided
    actor            VARCHAR,                   -- who asked: CI user, kubectl user
    override_reason  VARCHAR,
    approver         VARCHAR,
    document         VARCHAR NOT NULL           -- JSON: inputs, projected figures, thresholds
);

-- A release the gate saw: the start of delivery metrics per persona.
CREATE TABLE deployments (
    deployment_id  INTEGER PRIMARY KEY,
    time           TIMESTAMP_NS NOT NULL,
    workload       VARCHAR NOT NULL,
    version        VARCHAR,
    kind           VARCHAR,
    team           VARCHAR,
    environment    VARCHAR NOT NULL,
    action         VARCHAR NOT NULL,            -- check | admission
    verdict        VARCHAR NOT NULL,            -- the gate's verdict on it
    decision_id    INTEGER NOT NULL
);
