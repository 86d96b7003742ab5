-- Predictions per model version and hour, folded from inference spans with the trace
-- summaries (store/summary.py), so the model inventory (GET /api/v1/models) reads a few
-- rows per hour instead of every inference span of its window.
CREATE TABLE model_hours (
    hour          TIMESTAMP NOT NULL,
    model_name    VARCHAR NOT NULL,
    model_version VARCHAR,
    workload      VARCHAR NOT NULL,
    environment   VARCHAR,
    predictions   BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    first_seen    TIMESTAMP_NS NOT NULL,
    last_seen     TIMESTAMP_NS NOT NULL
);

INSERT INTO model_hours
SELECT date_trunc('hour', start_time), model_name, model_version, workload, environment,
       count(*), count(*) FILTER (WHERE status_code = 2), min(start_time), max(start_time)
FROM spans
WHERE role = 'inference' AND model_name IS NOT NULL
  AND batch_no <= (SELECT summarized_through FROM store_state)
GROUP BY ALL;
