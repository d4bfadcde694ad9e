"""What each key of `modelci.toml` and `model.toml` means, by file and dotted key: the words of
the configuration reference that `modelci.configdoc` generates (it fails when a key of the spec
models has no meaning here, or a meaning names a key that no longer exists)."""

from __future__ import annotations

from modelci.settings import MODEL_FILE, PROJECT_FILE

# What each key means, by file and dotted key. `<name>` stands for a key the user chooses.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    PROJECT_FILE: {
        "project": "Where the models are and which branch releases come from.",
        "project.main": "The branch that releases must come from: `release TAG` takes only a "
        "tag on a commit of this branch.",
        "project.models": "Globs (from the repository root) of folders that may hold a "
        "`model.toml`; every such folder is a model.",
        "project.shared": "Globs of files shared by every model: a change to one of them marks "
        "every model changed.",
        "environments": "The environments, in order: `run` deploys merges to the first, the "
        "last is production. Each name matches `^[a-z][a-z0-9-]{0,54}$`.",
        "environments.<name>": "One environment.",
        "environments.<name>.suffix": "Appended to a model's name to name its endpoint in this "
        "environment (`churn-staging`); lower-case letters, digits and `-`; no two "
        "environments share one.",
        "environments.<name>.approval": "`true`: a version goes to this environment (`release`, "
        "`promote`, `deploy`) only once someone other than its author ran `modelci approve "
        "VERSION --env <name>`; `--force` does not skip it. A rollback needs none.",
        "registry": "The registry: versions, what each environment wants, the event log.",
        "registry.url": "`sqlite:///path` (relative to the repository root) or "
        "`postgresql://user@host/database` (install the `postgres` extra).",
        "store": "The artifact store: trained models, content-addressed by sha256.",
        "store.url": "A folder (relative to the repository root, or absolute, or `file:///`), "
        "`s3://bucket/prefix` (the `s3` extra) or `oci://host/repository`.",
        "train": "Where training jobs run.",
        "train.backend": "`local` (a child process in the model's environment), `container` (a "
        "container of the model's image, `/opt/ml` mounted as SageMaker does; see `[image]`), "
        "`ray` (a Ray "
        "job; see `[ray]`) or `sagemaker` (a SageMaker training job; see `[sagemaker]`).",
        "deploy": "Where endpoints run.",
        "deploy.backend": "`local` (the `modelci serve` host on this machine), `container` (that "
        "host running each version as a container of its image; see `[image]`), `host` "
        "(long-lived `modelci serve` hosts elsewhere that follow the registry and report "
        "through it), `ray` (Ray Serve applications; see `[ray]`) or `sagemaker` (SageMaker "
        "endpoints; see `[sagemaker]`).",
        "deploy.timeout": "Seconds the `host` backend waits for a host's report that it serves "
        "the new version (and its smoke request passed) before rolling the pointer back.",
        "image": "Container images: `modelci build --image`, `modelci base-image` and the "
        "`container` backends.",
        "image.base": "The image a model's image is built from. Unset: the official slim Python "
        "image of the environment's Python (`python:3.11-slim`); where it cannot be pulled, "
        "`modelci base-image` builds an equivalent from Debian packages and prints its tag.",
        "image.registry": "`host/prefix` of the images' tags, `<registry>/<model>:<sha12>`. "
        "Unset: `modelci.local` (built, never pushed).",
        "image.engine": "`podman` or `docker`. Unset: the first of docker and podman that answers.",
        "image.ca_bundle": "The CA bundle pip trusts inside an image build (a network whose "
        "HTTPS is re-signed by a proxy). Unset: `SSL_CERT_FILE`, else the system's bundle when "
        'there is one; `""`: none.',
        "ray": 'The Ray cluster of `backend = "ray"`.',
        "ray.address": "The head's `host:port`, as `ray start --address` takes it.",
        "ray.dashboard_url": "The head's dashboard, which modelci talks to; unset: "
        "`http://<head>:8265`.",
        "ray.serve_host": "The address Ray Serve's proxy binds.",
        "ray.serve_port": "The port Ray Serve's proxy binds.",
        "sagemaker": 'Where and how SageMaker trains and serves (`backend = "sagemaker"`); '
        "credentials come only from boto3's standard chain.",
        "sagemaker.role_arn": "The IAM role SageMaker's jobs and endpoints run as.",
        "sagemaker.region": "The AWS region; unset: boto3's default.",
        "sagemaker.bucket": "`s3://bucket` or `s3://bucket/prefix`: code, channels and outputs "
        "go under it.",
        "sagemaker.instance_type": "The instance type of training jobs.",
        "sagemaker.instance_count": "The number of instances of a training job.",
        "sagemaker.image_uri": "The image jobs and endpoints run; it may name `{model}` and "
        "`{sha12}`. Unset: SageMaker's scikit-learn framework image of the region.",
        "sagemaker.framework_version": "The version of SageMaker's scikit-learn framework image "
        "used when `image_uri` is unset.",
        "sagemaker.max_wait_s": "Seconds modelci waits on SageMaker beyond the work itself: a "
        "training job's queue before its `[train].timeout`, an endpoint becoming InService.",
        "sagemaker.endpoint_instance_type": "The instance type of endpoints.",
        "sagemaker.endpoint_instance_count": "The number of instances of an endpoint.",
        "sagemaker.alarms": "CloudWatch alarm names that roll a blue/green update back "
        "automatically.",
        "sagemaker.canary": "A blue/green update's canary: this share of the new fleet takes "
        "traffic first, before the rest shifts.",
        "sagemaker.canary.percent": "The share of the new fleet, in percent, that takes "
        "traffic first.",
        "sagemaker.canary.wait_s": "Seconds the canary serves before the rest of the traffic "
        "shifts.",
        "serve": "How the endpoint host (`modelci serve`, the `local` and `host` backends) packs "
        "versions into processes.",
        "serve.isolation": '`"process"`: every endpoint version runs its own server process '
        '(about 165 MiB idle each). `"shared"`: versions whose environments are the same (one '
        "lock, one virtualenv) share one server process, as SageMaker's multi-model endpoints "
        "do, each loaded on its first request and unloaded when idle; a model's `model_fn` "
        "that raises fails only its own endpoint, but a crash of the process (a segfault, "
        "running out of memory) restarts every version it serves. A model's own "
        "`[serve] isolation` wins; `workers > 1` and container endpoints always run their "
        "own process.",
        "serve.idle_unload": "Seconds without a request after which a version in a shared "
        "process is unloaded (its model freed; the next request loads it again); 0: never.",
        "serve.max_loaded": "The most versions one shared process keeps loaded; the least "
        "recently used idle one is unloaded to load another. 0: no limit.",
    },
    MODEL_FILE: {
        "model": "The model itself.",
        "model.name": "The model's name; unset: its folder's name. It matches "
        "`^[a-z][a-z0-9-]{0,54}$`, so that `<name>-staging` is a valid endpoint name.",
        "model.description": "One line saying what the model does.",
        "model.requirements": "The model's requirements file, in its folder; unset: "
        "`requirements.txt` when present, else modelci's default requirements. A committed "
        "`requirements.lock` beside it is used verbatim.",
        "model.depends_on": "Globs of files outside the model's folder (from the repository "
        "root) whose changes also mark the model changed and enter its fingerprint.",
        "train": "The training job, in SageMaker's script mode.",
        "train.entrypoint": "The training script, in the model's folder. The only key every "
        "`model.toml` needs.",
        "train.hyperparameters": "Values the script receives as `--name value` arguments, "
        "`SM_HP_<NAME>` and `SM_HPS`.",
        "train.seed": "The seed, as `MODELCI_SEED` and `PYTHONHASHSEED`; "
        "`modelci.seed_everything()` seeds random, NumPy and PyTorch from it.",
        "train.channels": "Input channels by name: files or folders from the repository root, "
        "or URIs; the script finds each in `SM_CHANNEL_<NAME>`.",
        "train.metrics": "Metrics by name: a regex over the job's log whose first group is the "
        "value, as SageMaker's metric definitions.",
        "train.sample": "The deterministic sample `modelci test` trains on for "
        "reproducibility; unset: the whole channels.",
        "train.sample.fraction": "The share of rows kept, in (0, 1].",
        "train.sample.key": "The column whose value (hashed with the seed) decides whether a "
        "row is kept; unset: the whole row.",
        "train.timeout": "Seconds a training job may run before it is stopped.",
        "train.resources": "What one job asks of a cluster (Ray, SageMaker); the local backend "
        "runs the job on this machine as it is.",
        "train.resources.num_cpus": "CPUs for the job.",
        "train.resources.num_gpus": "GPUs for the job.",
        "train.resources.memory": 'Memory for the job: bytes, or a size such as `"2GiB"` or '
        '`"512MB"`.',
        "serve": "The model's endpoints.",
        "serve.handler": "A serving handler in the model's folder with SageMaker's `model_fn`, "
        "`input_fn`, `predict_fn`, `output_fn`; unset: the built-in handler for the saved "
        "model file (scikit-learn/joblib, XGBoost, ONNX).",
        "serve.batch": "Adaptive batching: the rows of concurrent requests go to the model in "
        "one predict call.",
        "serve.batch.max_size": "The most rows in one predict call.",
        "serve.batch.max_wait_ms": "Milliseconds a batch may wait for a request still being read.",
        "serve.workers": "Server processes (or Ray Serve replicas) per endpoint.",
        "serve.isolation": '`"process"`: this model\'s endpoints always get their own server '
        'process; `"shared"`: they may share one with the versions of the same environment '
        "(see `modelci.toml`'s `[serve] isolation`); unset: the project's setting.",
        "serve.capture": "Data capture: sampled requests and answers recorded in SageMaker's "
        "data-capture format, in batched files in the store (`modelci capture`, `modelci drift`).",
        "serve.capture.percent": "The share of requests recorded, 0 to 100; 0 records none. A "
        "record that cannot keep up is dropped and counted, never a request slowed.",
        "serve.capture.columns": "The training columns a request's row carries, in order, for "
        "`modelci drift` (default: the training columns but the label and the sample key, as the "
        "smoke request).",
        "gates": "Must all hold before a version is deployed; a change re-tests, not retrains.",
        "gates.<metric>": 'A metric\'s bound, such as `">= 0.85"`, `"< 0.3"` or '
        '`"between 0.1 0.2"`; the key `no_regression` takes a table instead, '
        '`shadow_disagreement` (such as `"<= 0.01"`) bounds the share of predictions a '
        "shadow of the version (`modelci deploy --shadow`) disagreed on, judged when it is "
        "deployed to an environment after the first that serves another version, and `drift` "
        "bounds the share of columns whose requests captured in the environment a version "
        "served before drifted from the training data (`modelci drift`), judged when it moves "
        "into a later environment (`deploy`, `promote`, `release`).",
        "gates.no_regression": "The version may not be worse than the production version.",
        "gates.no_regression.metric": "The metric compared with the production version's.",
        "gates.no_regression.max_drop": "How far (absolutely) the metric may fall below "
        "production's.",
        "tests": "What `modelci test` checks besides gates; a change re-tests, not retrains.",
        "tests.golden": "Golden outputs (JSON lines of input and expected output), in the "
        "model's folder; `modelci golden record` writes them.",
        "tests.tolerance": "How far (relative or absolute) a number may be from its golden value.",
        "sagemaker": "This model's own SageMaker settings, over `modelci.toml`'s `[sagemaker]` "
        '(`backend = "sagemaker"`).',
        "sagemaker.instance_type": "The instance type of its training jobs.",
        "sagemaker.instance_count": "The number of instances of its training jobs.",
        "sagemaker.volume_size_gb": "The training volume's size in GB; unset: 30.",
        "sagemaker.endpoint_instance_type": "The instance type of its endpoints.",
        "sagemaker.endpoint_instance_count": "The number of instances of its endpoints.",
        "sagemaker.spot": "Managed spot training (`EnableManagedSpotTraining`).",
        "sagemaker.spot_max_wait_s": "With `spot`: how long a job may wait for spot capacity "
        "and run (`MaxWaitTimeInSeconds`, at least `train.timeout`); unset: twice the timeout.",
        "sagemaker.checkpoint_s3_uri": "`s3://bucket/prefix` where the job's "
        "`/opt/ml/checkpoints` is kept (`CheckpointConfig`), so that a spot job resumes.",
        "sagemaker.subnets": "VPC subnets of its training jobs and models (with "
        "`security_group_ids`).",
        "sagemaker.security_group_ids": "VPC security groups of its training jobs and models "
        "(with `subnets`).",
        "sagemaker.kms_key_id": "The KMS key that encrypts its training volume and output and "
        "its endpoints' storage.",
        "sagemaker.environment": "Variables set in its training jobs and serving containers.",
    },
}

# `[deploy.rollout]`'s keys, the same wherever the table stands (project, environment, model).
ROLLOUT: dict[str, str] = {
    "rollout": "How a deploy moves traffic to the new version and when it sends it all back "
    "(`modelci.rolloutspec`); a later table overrides the keys it sets: project, environment, "
    "model.",
    "rollout.strategy": "`all_at_once` (the health-checked switch), `canary` (`canary_percent` "
    "of the traffic for one bake, then all) or `linear` (`linear_step_percent` more at each "
    "bake). The old version serves the rest until the new one takes all.",
    "rollout.canary_percent": "The new version's share of the requests, in percent, during a "
    "canary's bake.",
    "rollout.linear_step_percent": "How many percent of the requests each linear step adds.",
    "rollout.bake_seconds": "How long each step serves before the next, its alarms watched.",
    "rollout.termination_wait_seconds": "How long the new version takes all traffic, alarms "
    "still watched and the old version still running, before the deploy ends.",
    "rollout.max_error_rate": "Alarm: the share of the new version's requests in a bake that "
    "failed (any 5xx, from the handler or the host). Unset: none.",
    "rollout.max_p99_ms": "Alarm: the 99th percentile of the new version's latency in a bake, "
    "in milliseconds. Unset: none.",
    "rollout.max_model_error_rate": "Alarm: the share of the new version's requests in a bake "
    "that its handler answered with a 5xx. Unset: none.",
    "rollout.min_requests": "The new version's requests in a bake before its alarms are judged "
    "before the bake ends (at its end they are judged on whatever came).",
}
DESCRIPTIONS[PROJECT_FILE].update({f"deploy.{k}": v for k, v in ROLLOUT.items()})
DESCRIPTIONS[PROJECT_FILE].update({f"environments.<name>.{k}": v for k, v in ROLLOUT.items()})
DESCRIPTIONS[MODEL_FILE].update({f"deploy.{k}": v for k, v in ROLLOUT.items()})
DESCRIPTIONS[MODEL_FILE]["deploy"] = "This model's own deploy settings."
