"""`modelci.toml` and `model.toml` -> typed settings, with MODELCI_* environment overrides.

Every problem becomes a ConfigError naming the file and the dotted key at fault.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from modelci.errors import ConfigError
from modelci.settings import (
    DEFAULT_URLS,
    MODEL_FILE,
    MODEL_NAME,
    PROJECT_FILE,
    apply_overrides,
    glob_regex,
    model_folders,
    read_toml,
)
from modelci.testing.gates import parse_gate

Scalar = str | int | float | bool
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
S3_BUCKET_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


class Strict(BaseModel):
    """A spec section: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- model.toml -------------------------------------------------------------------------------


class ModelSection(Strict):
    name: str | None = None
    description: str = ""
    requirements: str | None = None
    depends_on: list[NonEmpty] = []


class SampleSection(Strict):
    fraction: float = Field(gt=0, le=1)
    key: str | None = None


_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_memory(value: object) -> object:
    """`2GiB`, `512MB`, `1.5G` or a number of bytes -> bytes; anything else is left for the
    type check to reject."""
    if isinstance(value, str):
        match = _MEMORY.match(value)
        if match is None:
            raise ValueError(f'expected bytes or a size such as "2GiB", got {value!r}')
        unit = (match.group(2) or "").lower().removesuffix("b")
        return int(float(match.group(1)) * _MEMORY_UNITS[unit])
    return value


class ResourcesSection(Strict):
    """What one training job asks of a cluster (`[train].resources`); the local backend runs
    the job on this machine as it is."""

    num_cpus: float | None = Field(default=None, ge=0)
    num_gpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=0)  # bytes; "2GiB"-style strings accepted

    _memory = field_validator("memory", mode="before")(parse_memory)

    def asked(self) -> dict[str, float]:
        """The resources set, by name."""
        return {k: float(v) for k, v in self.model_dump().items() if v is not None}


class TrainSection(Strict):
    entrypoint: NonEmpty
    hyperparameters: dict[str, Scalar] = {}
    seed: int = 0
    channels: dict[str, NonEmpty] = {}
    metrics: dict[str, NonEmpty] = {}
    sample: SampleSection | None = None
    timeout: int = Field(default=3600, gt=0)
    resources: ResourcesSection = ResourcesSection()

    @field_validator("metrics")
    @classmethod
    def _regexes_compile(cls, metrics: dict[str, str]) -> dict[str, str]:
        for name, pattern in metrics.items():
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{name}: not a valid regular expression: {exc}") from None
            if compiled.groups < 1:
                raise ValueError(f"{name}: the regex needs one capturing group for the value")
        return metrics


class BatchSection(Strict):
    max_size: int = Field(default=64, ge=1)
    max_wait_ms: float = Field(default=2, ge=0)


class ServeSection(Strict):
    handler: str | None = None
    batch: BatchSection = BatchSection()
    workers: int = Field(default=1, ge=1)


class NoRegression(Strict):
    metric: NonEmpty
    max_drop: float = Field(default=0.0, ge=0)


class TestsSection(Strict):
    golden: str | None = None
    tolerance: float = Field(default=1e-6, ge=0)


class ModelFile(Strict):
    model: ModelSection = ModelSection()
    train: TrainSection
    serve: ServeSection = ServeSection()
    gates: dict[str, str | NoRegression] = {}
    tests: TestsSection = TestsSection()

    @field_validator("gates")
    @classmethod
    def _gates_parse(cls, gates: dict[str, str | NoRegression]) -> dict[str, str | NoRegression]:
        for metric, expression in gates.items():
            if metric == "no_regression":
                if not isinstance(expression, NoRegression):
                    raise ValueError("no_regression: expected a table { metric, max_drop }")
            elif isinstance(expression, str):
                parse_gate(expression, metric=metric)
            else:
                raise ValueError(f'{metric}: expected an expression such as ">= 0.85"')
        return gates


class ModelSpec(BaseModel):
    """One model of the repository, as its `model.toml` says, with where it lives."""

    model_config = ConfigDict(frozen=True)

    name: str
    folder: str  # relative to the repository root, with forward slashes
    spec_file: str
    file: ModelFile

    @property
    def train(self) -> TrainSection:
        return self.file.train

    @property
    def depends_on(self) -> list[str]:
        return self.file.model.depends_on


# --- modelci.toml -----------------------------------------------------------------------------


class ProjectSection(Strict):
    main: NonEmpty = "main"
    models: list[NonEmpty] = ["models/*"]
    shared: list[NonEmpty] = []


class EnvironmentSection(Strict):
    suffix: str = Field(default="", pattern=r"^[a-z0-9-]*$")


class UrlSection(Strict):
    url: NonEmpty


class BackendSection(Strict):
    backend: Literal["local", "ray", "sagemaker"] = "local"


class CanarySection(Strict):
    """A blue/green update's canary: this share of the new fleet takes traffic first, for
    `wait_s` seconds, before the rest shifts (SageMaker's CANARY traffic routing)."""

    percent: int = Field(default=10, ge=1, le=100)
    wait_s: int = Field(default=300, ge=0, le=3600)


class SageMakerSection(Strict):
    """Where and how SageMaker trains and serves (`[train]`/`[deploy] backend = "sagemaker"`).

    `bucket` is `s3://bucket/prefix`: code, channels and outputs go under it. `image_uri`
    defaults to SageMaker's scikit-learn framework image (`framework_version`) of the region;
    it may name `{model}` and `{sha12}`, as `modelci build --image` tags images. `max_wait_s`
    bounds how long modelci waits on SageMaker beyond the work itself: a training job's queue
    before its `[train].timeout`, an endpoint becoming InService. `alarms` are CloudWatch alarm
    names that roll a blue/green update back automatically.
    """

    role_arn: str | None = None
    region: str | None = None
    bucket: str | None = None
    instance_type: NonEmpty = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1)
    image_uri: str | None = None
    framework_version: NonEmpty = "1.2-1"
    max_wait_s: int = Field(default=1800, gt=0)
    endpoint_instance_type: NonEmpty = "ml.m5.large"
    endpoint_instance_count: int = Field(default=1, ge=1)
    alarms: list[NonEmpty] = []
    canary: CanarySection = CanarySection()

    @field_validator("bucket")
    @classmethod
    def _bucket_is_s3(cls, bucket: str | None) -> str | None:
        if bucket is not None and not S3_BUCKET_URL.fullmatch(bucket):
            raise ValueError(f"expected s3://bucket or s3://bucket/prefix, got {bucket!r}")
        return bucket


class RaySection(Strict):
    """The Ray cluster of `[train]`/`[deploy] backend = "ray"`.

    `address` is the cluster's (`host:port` of its head, as `ray start --address` takes it);
    modelci talks to the head's dashboard, `dashboard_url`, by default `http://<head>:8265`.
    Ray Serve's proxy binds `serve_host:serve_port`.
    """

    address: NonEmpty | None = None
    dashboard_url: NonEmpty | None = None
    serve_host: NonEmpty = "127.0.0.1"
    serve_port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard_is_http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url


def _default_environments() -> dict[str, EnvironmentSection]:
    return {
        "staging": EnvironmentSection(suffix="-staging"),
        "production": EnvironmentSection(suffix=""),
    }


class ProjectFile(Strict):
    project: ProjectSection = ProjectSection()
    environments: dict[str, EnvironmentSection] = Field(default_factory=_default_environments)
    registry: UrlSection = UrlSection(url=DEFAULT_URLS["registry"])
    store: UrlSection = UrlSection(url=DEFAULT_URLS["store"])
    train: BackendSection = BackendSection()
    deploy: BackendSection = BackendSection()
    ray: RaySection = RaySection()
    sagemaker: SageMakerSection = SageMakerSection()

    @field_validator("environments")
    @classmethod
    def _environments(cls, envs: dict[str, EnvironmentSection]) -> dict[str, EnvironmentSection]:
        if not envs:
            raise ValueError("at least one environment is needed")
        suffixes = [e.suffix for e in envs.values()]
        if len(set(suffixes)) != len(suffixes):
            raise ValueError("two environments share one suffix, so their endpoints would clash")
        for name in envs:
            if not MODEL_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: an environment name matches {MODEL_NAME.pattern}")
        return envs


# --- loading ----------------------------------------------------------------------------------


def _known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at `loc` (the parent of an unknown key), for 'did you mean'."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not None]
        current = next(
            (a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


# pydantic names the member of a union that failed inside the location: not a key of the file
_UNION_MEMBERS = {"str", "int", "float", "bool", "NoRegression", "SampleSection"}
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "model_type": "a table",
    "dict_type": "a table",
}
# dict-valued keys whose validators name the entry at fault as "<entry>: <message>"
_KEYED_VALIDATORS = {("gates",), ("train", "metrics")}


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in _UNION_MEMBERS)))


def _explain(exc: ValidationError, model: type[BaseModel], file: Path | str) -> ConfigError:
    """The first validation problem as one ConfigError naming file and dotted key."""
    errors = exc.errors(include_url=False)
    error = errors[0]
    loc = _clean_loc(error["loc"])
    same_place = [e for e in errors if _clean_loc(e["loc"]) == loc]
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if known and not close:
            hint = f"; known keys: {', '.join(known)}"
        message = f"unknown key{hint}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "value_error":
        message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        entry, _, rest = message.partition(": ")
        if loc in _KEYED_VALIDATORS and rest and " " not in entry:
            loc, message = (*loc, entry), rest
    elif len(same_place) > 1 and all(e["type"] in _TYPE_WORDS for e in same_place):
        words = sorted({_TYPE_WORDS[e["type"]] for e in same_place})
        message = f"expected {', '.join(words[:-1])} or {words[-1]}, got {error['input']!r}"
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
        if "input" in error and not isinstance(error["input"], dict | list):
            message += f", got {error['input']!r}"
    extra = len({_clean_loc(e["loc"]) for e in errors}) - 1
    if extra:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return ConfigError(message, file=file, key=".".join(str(p) for p in loc) or None)


def load_project(root: Path, environ: Mapping[str, str] | None = None) -> ProjectFile:
    """The project settings: `modelci.toml` (optional) under MODELCI_* overrides."""
    path = root / PROJECT_FILE
    data = read_toml(path, PROJECT_FILE) if path.is_file() else {}
    data = apply_overrides(data, os.environ if environ is None else environ)
    try:
        return ProjectFile.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, ProjectFile, PROJECT_FILE) from None


def parse_model(folder: str, data: dict[str, Any], spec_file: str) -> ModelSpec:
    """Validate one parsed `model.toml`; `folder` is the model folder relative to the root."""
    try:
        parsed = ModelFile.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, ModelFile, spec_file) from None
    name = parsed.model.name or folder.rsplit("/", 1)[-1]
    if not MODEL_NAME.fullmatch(name):
        where = "[model].name" if parsed.model.name else "the folder's name"
        raise ConfigError(
            f"{name!r} ({where}) is not a valid model name: it must match {MODEL_NAME.pattern} "
            "so that `<name>-staging` is a valid endpoint name",
            file=spec_file,
            key="model.name",
        )
    return ModelSpec(name=name, folder=folder, spec_file=spec_file, file=parsed)


def collect_models(
    root: Path, project: ProjectFile, files: Iterable[str]
) -> tuple[list[ModelSpec], list[ConfigError]]:
    """Every valid model among `files` (the work tree's, relative to `root`), and one error for
    each bad spec: syntax, keys, types, names (clashing ones too), a missing entry point or
    requirements file."""
    models: list[ModelSpec] = []
    errors: list[ConfigError] = []
    by_name: dict[str, ModelSpec] = {}
    for folder in model_folders(files, project.project.models):
        spec_file = f"{folder}/{MODEL_FILE}"
        try:
            model = parse_model(folder, read_toml(root / spec_file, spec_file), spec_file)
            _check_files(root, model)
            if model.name in by_name:
                raise ConfigError(
                    f"model name {model.name!r} is used twice: here and in "
                    f"{by_name[model.name].spec_file}; set a distinct [model].name",
                    file=spec_file,
                    key="model.name",
                )
        except ConfigError as error:
            errors.append(error)
            continue
        by_name[model.name] = model
        models.append(model)
    return models, errors


def _check_files(root: Path, model: ModelSpec) -> None:
    """The files a spec names inside its folder must exist."""
    folder = root / model.folder
    if not (folder / model.train.entrypoint).is_file():
        raise ConfigError(
            f"entry point {model.train.entrypoint!r} does not exist in {model.folder}/",
            file=model.spec_file,
            key="train.entrypoint",
        )
    requirements = model.file.model.requirements
    if requirements is not None and not (folder / requirements).is_file():
        raise ConfigError(
            f"requirements file {requirements!r} does not exist in {model.folder}/",
            file=model.spec_file,
            key="model.requirements",
        )


def load_models(root: Path, project: ProjectFile, files: Iterable[str]) -> list[ModelSpec]:
    """Every model of the work tree; the first bad spec raises its ConfigError."""
    models, errors = collect_models(root, project, files)
    if errors:
        raise errors[0]
    return models


def spec_warnings(models: list[ModelSpec], files: list[str]) -> list[str]:
    """What is suspicious but not wrong: a `depends_on` glob that matches no file, a channel or
    golden file that is not in the work tree."""
    warnings: list[str] = []
    file_set = set(files)
    for model in models:
        for pattern in model.depends_on:
            regex = glob_regex(pattern)
            if not any(regex.fullmatch(f) for f in files):
                warnings.append(f"{model.spec_file}: model.depends_on: {pattern!r} matches no file")
        for channel, source in model.train.channels.items():
            if "://" in source:
                continue
            path = source.strip("/")
            if path not in file_set and not any(f.startswith(f"{path}/") for f in files):
                warnings.append(
                    f"{model.spec_file}: train.channels.{channel}: {source!r} is not in the "
                    "work tree"
                )
        golden = model.file.tests.golden
        if golden and f"{model.folder}/{golden}" not in file_set:
            warnings.append(f"{model.spec_file}: tests.golden: {golden!r} does not exist")
    return warnings


def find_model(models: list[ModelSpec], name: str) -> ModelSpec:
    """The model of that name; an unknown one is a ConfigError listing the known names."""
    for model in models:
        if model.name == name:
            return model
    known = ", ".join(m.name for m in models) or "none"
    close = difflib.get_close_matches(name, [m.name for m in models], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"no model named {name!r}{hint}; known models: {known}")
