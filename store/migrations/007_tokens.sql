-- API and ingest tokens. Only the SHA-256 of a token's secret is stored: the secret is
-- shown once, when the token is created, and cannot be read back from the store.
CREATE TABLE tokens (
    token_id       INTEGER PRIMARY KEY,
    name           VARCHAR NOT NULL,
    scopes         VARCHAR[] NOT NULL,         -- ingest | read | gate | admin (admin: all)
    team           VARCHAR,                    -- reads restricted to this team's data; NULL: all
    secret_sha256  VARCHAR NOT NULL UNIQUE,    -- hex SHA-256 of the secret
    created_at     TIMESTAMP_NS NOT NULL,
    revoked_at     TIMESTAMP_NS                -- NULL: the token is valid
);
