-- GPU samples: one row per GPU (or MIG instance) per scrape and per pod holding it. A GPU
-- shared by several pods (time-slicing) appears once per pod with the same device figures:
-- never sum utilisation across pods of one GPU. Filled from dcgm-exporter scrapes, from
-- DCGM_FI_* metrics arriving over OTLP, and from the NVML sampler.
CREATE TABLE gpu_samples (
    time              TIMESTAMP_NS NOT NULL,
    source            VARCHAR NOT NULL,   -- dcgm | otlp | nvml
    target            VARCHAR,            -- scrape URL, OTLP service.instance.id, or NVML host
    hostname          VARCHAR,            -- dcgm label Hostname (older) or hostname (newer)
    gpu               INTEGER,            -- device index on the host
    uuid              VARCHAR,
    model_name        VARCHAR,
    mig_profile       VARCHAR,            -- GPU_I_PROFILE, e.g. 1g.10gb; NULL without MIG
    mig_instance      INTEGER,            -- GPU_I_ID
    namespace         VARCHAR,            -- the pod holding the GPU; NULL when none does
    pod               VARCHAR,
    container         VARCHAR,
    workload          VARCHAR,            -- namespace/name of the pod's owner; NULL until known
    utilization       DOUBLE,             -- 0..1: GR_ENGINE_ACTIVE when present, else GPU_UTIL/100
    gpu_util          DOUBLE,             -- DCGM_FI_DEV_GPU_UTIL, percent
    gr_engine_active  DOUBLE,             -- DCGM_FI_PROF_GR_ENGINE_ACTIVE, ratio 0..1
    fb_used_mib       DOUBLE,
    fb_free_mib       DOUBLE,
    power_w           DOUBLE
);

-- Kubernetes nodes, one row per node uid, kept up to date by list + watch.
CREATE TABLE k8s_nodes (
    uid                 VARCHAR PRIMARY KEY,
    name                VARCHAR NOT NULL,
    created             TIMESTAMP_NS,
    deleted             TIMESTAMP_NS,       -- NULL while the node exists
    instance_type       VARCHAR,            -- node.kubernetes.io/instance-type
    region              VARCHAR,
    zone                VARCHAR,
    capacity_type       VARCHAR,            -- spot | on-demand; NULL when no label says
    gpu_product         VARCHAR,            -- nvidia.com/gpu.product
    gpu_replicas        INTEGER,            -- nvidia.com/gpu.replicas: time-slicing replicas
    cpu_capacity        DOUBLE,             -- cores
    memory_capacity     DOUBLE,             -- bytes
    gpu_capacity        DOUBLE,             -- nvidia.com/gpu (+ .shared) as advertised
    cpu_allocatable     DOUBLE,
    memory_allocatable  DOUBLE,
    gpu_allocatable     DOUBLE,
    labels              VARCHAR NOT NULL,   -- JSON object
    updated             TIMESTAMP_NS NOT NULL
);

-- Kubernetes pods, one row per pod uid: where it ran, for how long, what it asked for.
CREATE TABLE k8s_pods (
    uid              VARCHAR PRIMARY KEY,
    namespace        VARCHAR NOT NULL,
    name             VARCHAR NOT NULL,
    node             VARCHAR,
    phase            VARCHAR,
    qos_class        VARCHAR,
    workload         VARCHAR NOT NULL,  -- namespace/name of the top owner
    owner_kind       VARCHAR NOT NULL,  -- Deployment | StatefulSet | DaemonSet | CronJob | Job | ReplicaSet | Pod
    owner_name       VARCHAR NOT NULL,
    team             VARCHAR,           -- label onepane.dev/team or team
    kind             VARCHAR,           -- label onepane.dev/kind: app | model | pipeline
    created          TIMESTAMP_NS,
    start_time       TIMESTAMP_NS,      -- status.startTime: NULL while unscheduled
    end_time         TIMESTAMP_NS,      -- NULL while running
    end_observed     BOOLEAN,           -- false: the pod vanished while unwatched; ended at relist
    cpu_request      DOUBLE,            -- cores, effective pod request
    cpu_limit        DOUBLE,
    memory_request   DOUBLE,            -- bytes
    memory_limit     DOUBLE,
    gpu_request      DOUBLE,            -- nvidia.com/gpu or nvidia.com/gpu.shared
    gpu_limit        DOUBLE,
    gpu_resource     VARCHAR,           -- which extended resource: nvidia.com/gpu, .shared, mig-*
    labels           VARCHAR NOT NULL,  -- JSON object
    updated          TIMESTAMP_NS NOT NULL
);

-- Pods with the physical GPUs they hold: a request on a time-sliced node
-- (nvidia.com/gpu.replicas = N) is 1/N of a GPU.
CREATE VIEW k8s_pod_gpus AS
SELECT p.*,
       p.gpu_request / greatest(coalesce(n.gpu_replicas, 1), 1) AS gpu_physical,
       n.instance_type, n.capacity_type, n.gpu_product
FROM k8s_pods p
LEFT JOIN (SELECT name, arg_max(gpu_replicas, updated) AS gpu_replicas,
                  arg_max(instance_type, updated) AS instance_type,
                  arg_max(capacity_type, updated) AS capacity_type,
                  arg_max(gpu_product, updated) AS gpu_product
           FROM k8s_nodes GROUP BY name) n ON n.name = p.node;
