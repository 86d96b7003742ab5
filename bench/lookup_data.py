"""A week of traces for the lookup benchmark, written straight into a store file.

``spans`` spans in traces of 10, one trace every 7 days / traces (0.6 s for 1M traces),
three flows of the shape request → API → model inference → 7 database queries:

* checkout: web-frontend ``GET /checkout`` → checkout-api ``POST /api/checkout`` →
  fraud-model → orders-db;
* product pages: web-frontend → catalog-api ``GET /api/products/{id}`` → recsys-model;
* search: web-frontend → search-api ``GET /api/search`` → ranker-model.

Trace durations run from 10 ms to 510 ms, skewed to the fast end (a quarter take 300 ms or
more); inference takes 60% of the time below the API span. Each span has ~15 attributes,
including a unique ``app.order.id`` per trace and one of 50 ``app.tenant`` values. Every
97th trace has a failing query. Also one trace of 10,001 spans (see ``load_big_trace``).
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from store import db, summary

CHUNK = 1_000_000
SPANS_PER_TRACE = 10
END_NS = 1_763_900_000_000_000_000  # the newest trace starts just before this
WEEK_NS = 7 * 86_400 * 1_000_000_000
BIG_TRACE_ID = "b16b16b16b16b16b16b16b16b16b16b1"
BIG_TRACE_SPANS = 10_001

_SERVICES = [
    # resource_id, service, namespace, deployment
    (1, "web-frontend", "shop"),
    (2, "checkout-api", "shop"),
    (3, "catalog-api", "shop"),
    (4, "search-api", "shop"),
    (5, "fraud-model", "ml"),
    (6, "recsys-model", "ml"),
    (7, "ranker-model", "ml"),
]

_RESOURCES = """
INSERT INTO resources
SELECT rid, json_object('service.name', svc, 'service.version', '2.14.1',
                        'k8s.namespace.name', ns, 'k8s.deployment.name', svc,
                        'k8s.pod.name', svc || '-7d9f8b6c5-x2x7q', 'k8s.node.name', 'node-1',
                        'deployment.environment.name', 'prod')::VARCHAR
FROM (VALUES {values}) v(rid, svc, ns)
ON CONFLICT DO NOTHING
"""

_SPANS = """
INSERT INTO spans BY NAME
WITH ids AS (
    SELECT i, i // 10 AS t, i % 10 AS k, (i // 10) % 3 AS flow,
           md5('trace' || (i // 10)::VARCHAR) AS trace_id,
           $end - ($traces - i // 10) * $spacing AS t0,
           (10 + ((hash(i // 10) % 1000) ^ 2) / 2000.0) * 1e6 AS d
    FROM range($lo, $hi) r(i)
), bounds AS (
    SELECT *, (0.6 * (d - 4e6))::BIGINT AS infer, (0.4 * (d - 4e6))::BIGINT AS queries
    FROM ids
), shaped AS (
    SELECT *,
        CASE WHEN k = 0 THEN t0
             WHEN k = 1 THEN t0 + 1000000
             WHEN k = 2 THEN t0 + 2000000
             ELSE t0 + 2000000 + infer + (k - 3) * queries // 7
        END AS s0,
        CASE WHEN k = 0 THEN t0 + d::BIGINT
             WHEN k = 1 THEN t0 + d::BIGINT - 1000000
             WHEN k = 2 THEN t0 + 2000000 + infer
             ELSE t0 + 2000000 + infer + (k - 2) * queries // 7
        END AS e0,
        e0 - s0 AS dur,
        CASE WHEN k = 0 THEN 1 WHEN k = 2 THEN 5 + flow ELSE 2 + flow END AS rid
    FROM bounds
)
SELECT
    (CASE WHEN ('0x' || left(trace_id, 16))::UBIGINT >= 9223372036854775808
          THEN ('0x' || left(trace_id, 16))::UBIGINT::HUGEINT - 18446744073709551616
          ELSE ('0x' || left(trace_id, 16))::UBIGINT::HUGEINT END)::BIGINT AS trace_key,
    trace_id,
    left(md5('span' || i::VARCHAR), 16) AS span_id,
    CASE WHEN k = 0 THEN NULL
         WHEN k = 1 THEN left(md5('span' || (i - k)::VARCHAR), 16)
         ELSE left(md5('span' || (i - k + 1)::VARCHAR), 16) END AS parent_span_id,
    CASE WHEN k = 0 THEN ['GET /checkout', 'GET /products/{id}', 'GET /search'][flow + 1]
         WHEN k = 1 THEN ['POST /api/checkout', 'GET /api/products/{id}',
                          'GET /api/search'][flow + 1]
         WHEN k = 2 THEN 'predict ' || ['fraud-model', 'recsys-model', 'ranker-model'][flow + 1]
         ELSE ['SELECT orders', 'SELECT products', 'SELECT documents'][flow + 1] END AS name,
    CASE WHEN k < 2 THEN 2 WHEN k = 2 THEN 1 ELSE 3 END AS kind,
    make_timestamp_ns(s0) AS start_time,
    make_timestamp_ns(e0) AS end_time,
    dur AS duration_ns,
    CASE WHEN t % 97 = 0 AND k = 3 THEN 2 ELSE 0 END AS status_code,
    CASE WHEN t % 97 = 0 AND k = 3 THEN 'canceling statement due to statement timeout' END
        AS status_message,
    ['web-frontend', 'checkout-api', 'catalog-api', 'search-api', 'fraud-model',
     'recsys-model', 'ranker-model'][rid] AS service_name,
    '2.14.1' AS service_version,
    'prod' AS environment,
    CASE WHEN rid >= 5 THEN 'ml/' ELSE 'shop/' END
        || ['web-frontend', 'checkout-api', 'catalog-api', 'search-api', 'fraud-model',
            'recsys-model', 'ranker-model'][rid] AS workload,
    ['request', 'api', 'inference', 'db'][least(k, 3) + 1] AS role,
    CASE WHEN k = 0 THEN ['/checkout', '/products/{id}', '/search'][flow + 1]
         WHEN k = 1 THEN ['/api/checkout', '/api/products/{id}', '/api/search'][flow + 1]
    END AS http_route,
    CASE WHEN k < 2 THEN ['POST', 'GET', 'GET'][flow + 1] END AS http_method,
    CASE WHEN k < 2 THEN CASE WHEN t % 97 = 0 THEN 500 ELSE 200 END END AS http_status_code,
    CASE WHEN k >= 3 THEN 'postgresql' END AS db_system,
    CASE WHEN k >= 3 THEN 'SELECT' END AS db_operation,
    CASE WHEN k = 2 THEN ['fraud-model', 'recsys-model', 'ranker-model'][flow + 1] END
        AS model_name,
    CASE WHEN k = 2 THEN '3.2.0' END AS model_version,
    rid AS resource_id,
    '{"http.request.method":"' || ['POST', 'GET', 'GET'][flow + 1]
        || '","url.path":"/api/x","server.address":"checkout-api","server.port":8080,'
        || '"user_agent.original":"Mozilla/5.0 (X11; Linux x86_64)","client.address":"10.42.'
        || (t % 200)::VARCHAR || '.' || (t % 250)::VARCHAR || '","app.tenant":"tenant-'
        || (t % 50)::VARCHAR || '","app.order.id":' || t::VARCHAR
        || ',"app.region":"eu-west-1","app.retry":0,"app.cart.items":'
        || (t % 9)::VARCHAR || ',"app.span.index":' || k::VARCHAR
        || ',"thread.name":"worker-' || (t % 16)::VARCHAR || '","code.function":"handle_'
        || k::VARCHAR || '","net.transport":"ip_tcp"}' AS attributes,
    t // 1000 + 1 AS batch_no  -- the writer numbers batches from 1
FROM shaped
"""

_BIG_TRACE = """
INSERT INTO spans BY NAME
SELECT $key AS trace_key, $trace_id AS trace_id,
       printf('%016x', i + 1) AS span_id,
       CASE WHEN i = 0 THEN NULL WHEN i <= 2 THEN printf('%016x', i)
            ELSE printf('%016x', 2) END AS parent_span_id,
       CASE WHEN i = 0 THEN 'POST /checkout' WHEN i = 1 THEN 'POST /api/checkout'
            WHEN i = 2 THEN 'predict fraud-model'
            ELSE ['SELECT orders', 'SELECT order_items', 'UPDATE inventory'][i % 3 + 1] END
           AS name,
       CASE WHEN i < 2 THEN 2 ELSE 3 END AS kind,
       make_timestamp_ns(CASE WHEN i < 3 THEN $t0 + i * 1000000
                              ELSE $t0 + 3000000 + (i - 3) * 100000 END) AS start_time,
       make_timestamp_ns(CASE WHEN i = 0 THEN $t0 + 1100000000
                              WHEN i = 1 THEN $t0 + 1090000000
                              WHEN i = 2 THEN $t0 + 1085000000
                              ELSE $t0 + 3000000 + (i - 3) * 100000 + 90000 END) AS end_time,
       epoch_ns(end_time) - epoch_ns(start_time) AS duration_ns,
       0 AS status_code,
       CASE WHEN i = 0 THEN 'web-frontend' WHEN i = 2 THEN 'fraud-model'
            ELSE 'checkout-api' END AS service_name,
       CASE WHEN i = 2 THEN 'ml/fraud-model' WHEN i = 0 THEN 'shop/web-frontend'
            ELSE 'shop/checkout-api' END AS workload,
       CASE WHEN i = 0 THEN 'request' WHEN i = 1 THEN 'api' WHEN i = 2 THEN 'inference'
            ELSE 'db' END AS role,
       CASE WHEN i = 2 THEN 5 WHEN i = 0 THEN 1 ELSE 2 END AS resource_id,
       '{"app.span.index":' || i::VARCHAR || '}' AS attributes,
       $batch AS batch_no
FROM range($spans) r(i)
"""


def load(path: Path, spans: int) -> float:
    """Write ``spans`` spans (plus the big trace) into a fresh store; returns seconds."""
    started = time.perf_counter()
    conn = db.connect(path, memory_limit="2GB")
    values = ", ".join(f"({rid}, '{svc}', '{ns}')" for rid, svc, ns in _SERVICES)
    conn.execute(_RESOURCES.format(values=values))
    traces = spans // SPANS_PER_TRACE
    spacing = WEEK_NS // traces
    for lo in range(0, spans, CHUNK):
        params = {
            "lo": lo,
            "hi": min(spans, lo + CHUNK),
            "end": END_NS,
            "traces": traces,
            "spacing": spacing,
        }
        conn.execute(_SPANS, params)
        print(f"  loaded {min(spans, lo + CHUNK):,} spans", flush=True)
    load_big_trace(conn, END_NS - 3_600_000_000_000, traces // 1000 + 2)
    summary.fold(conn, summary.last_batch(conn))  # what the writer would have done
    conn.execute("CHECKPOINT")
    conn.close()
    return time.perf_counter() - started


def load_big_trace(conn: duckdb.DuckDBPyConnection, t0: int, batch: int) -> None:
    """One checkout trace of 10,001 spans: 9,998 queries under the API span, 0.1 ms apart."""
    from store.traces import trace_key

    params = {
        "key": trace_key(BIG_TRACE_ID),
        "trace_id": BIG_TRACE_ID,
        "t0": t0,
        "spans": BIG_TRACE_SPANS,
        "batch": batch,
    }
    conn.execute(_BIG_TRACE, params)


def trace_id(t: int) -> str:
    """The id of trace number ``t``."""
    import hashlib

    return hashlib.md5(f"trace{t}".encode()).hexdigest()
