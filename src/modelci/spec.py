"""`modelci.toml` and `model.toml` -> typed settings, with MODELCI_* environment overrides;
every problem becomes a ConfigError naming the file and the dotted key at fault."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelci.errors import ConfigError
from modelci.rolloutspec import ModelDeploySection, RolloutSection
from modelci.sections import HostServeSection, NonEmpty, Scalar, ServeSection, Strict
from modelci.sections import ImageSection as ImageSection
from modelci.sections import ModelSageMakerSection as ModelSageMakerSection
from modelci.sections import RaySection as RaySection
from modelci.sections import RegistrySection as RegistrySection
from modelci.sections import ResourcesSection as ResourcesSection
from modelci.sections import SageMakerSection as SageMakerSection
from modelci.sections import StoreSection as StoreSection
from modelci.settings import (
    DEFAULT_URLS,
    LIST_KEYS,
    MODEL_FILE,
    MODEL_NAME,
    OVERRIDABLE,
    PROJECT_FILE,
    apply_overrides,
    glob_regex,
    model_folders,
    model_name,
    parse_toml,
    read_bytes,
    read_toml,
)
from modelci.testing.gates import SHADOW_GATE, parse_gate
from modelci.validation import explain

if TYPE_CHECKING:
    from modelci.speccache import SpecCache

# --- model.toml -------------------------------------------------------------------------------


class ModelSection(Strict):
    name: str | None = None
    description: str = ""
    requirements: str | None = None
    depends_on: list[NonEmpty] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_valid(cls, name: str | None) -> str | None:
        if name is not None and not MODEL_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} ([model].name) is not a valid model name: it must match "
                f"{MODEL_NAME.pattern} so that `<name>-staging` is a valid endpoint name"
            )
        return name


class SampleSection(Strict):
    fraction: float = Field(gt=0, le=1)
    key: str | None = None


class TrainSection(Strict):
    entrypoint: NonEmpty
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict)
    seed: int = 0
    channels: dict[str, NonEmpty] = Field(default_factory=dict)
    metrics: dict[str, NonEmpty] = Field(default_factory=dict)
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
    gates: dict[str, str | NoRegression] = Field(default_factory=dict)
    tests: TestsSection = TestsSection()
    sagemaker: ModelSageMakerSection = ModelSageMakerSection()
    deploy: ModelDeploySection = ModelDeploySection()

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

    @model_validator(mode="after")
    def _spot_waits_for_the_job(self) -> ModelFile:
        wait = self.sagemaker.spot_max_wait_s
        if wait is not None and wait < self.train.timeout:
            raise ValueError(f"sagemaker.spot_max_wait_s: {wait} s is less than train.timeout")
        return self

    @model_validator(mode="after")
    def _gates_name_declared_metrics(self) -> ModelFile:
        declared = self.train.metrics
        for key, gate in self.gates.items():
            if key == "drift":  # captured requests against the training data, not a metric
                continue
            metric, where = (
                (gate.metric, "gates.no_regression.metric")
                if isinstance(gate, NoRegression)
                else (key, f"gates.{key}")
            )
            if metric not in declared and key != SHADOW_GATE:  # judged on a shadow's record
                known = ", ".join(declared) or "none"
                raise ValueError(
                    f"{where}: metric {metric!r} is not declared: add train.metrics.{metric} "
                    f"(a regex over the training log); declared metrics: {known}"
                )
        return self


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
    models: list[NonEmpty] = Field(default_factory=lambda: ["models/*"])
    shared: list[NonEmpty] = Field(default_factory=list)


class EnvironmentSection(Strict):
    suffix: str = Field(default="", pattern=r"^[a-z0-9-]*$")
    approval: bool = False
    rollout: RolloutSection | None = None


def _known(backend: str, table: Mapping[str, str], what: str) -> str:
    if backend not in table:
        names = [repr(n) for n in table]
        known = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise ValueError(f"unknown {what} {backend!r}; expected {known}")
    return backend


class TrainBackendSection(Strict):
    """`[train].backend`: a name of the trainer table (`modelci.train.TRAINERS`)."""

    backend: NonEmpty = "local"

    @field_validator("backend")
    @classmethod
    def _backend_known(cls, backend: str) -> str:
        from modelci.train import TRAINERS

        return _known(backend, TRAINERS, "training backend")


class DeployBackendSection(Strict):
    """`[deploy].backend`: a name of the deployer table (`modelci.deploy`); `timeout`: how
    long the `host` backend waits for a host's report."""

    backend: NonEmpty = "local"
    timeout: int = Field(default=180, gt=0)
    rollout: RolloutSection = RolloutSection()

    @field_validator("backend")
    @classmethod
    def _backend_known(cls, backend: str) -> str:
        from modelci.deploy import _DEPLOYERS

        return _known(backend, _DEPLOYERS, "deploy backend")


def _default_environments() -> dict[str, EnvironmentSection]:
    return {
        "staging": EnvironmentSection(suffix="-staging"),
        "production": EnvironmentSection(suffix=""),
    }


class ProjectFile(Strict):
    project: ProjectSection = ProjectSection()
    environments: dict[str, EnvironmentSection] = Field(default_factory=_default_environments)
    registry: RegistrySection = RegistrySection(url=DEFAULT_URLS["registry"])
    store: StoreSection = StoreSection(url=DEFAULT_URLS["store"])
    train: TrainBackendSection = TrainBackendSection()
    deploy: DeployBackendSection = DeployBackendSection()
    image: ImageSection = ImageSection()
    ray: RaySection = RaySection()
    sagemaker: SageMakerSection = SageMakerSection()
    serve: HostServeSection = HostServeSection()

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

    @model_validator(mode="after")
    def _sagemaker_has_a_role(self) -> ProjectFile:
        uses = [s for s in ("train", "deploy") if getattr(self, s).backend == "sagemaker"]
        if uses and not self.sagemaker.role_arn:
            raise ValueError(
                f'sagemaker.role_arn: [{uses[0]}] backend = "sagemaker" needs an execution '
                "role: set [sagemaker] role_arn in modelci.toml or MODELCI_SAGEMAKER_ROLE_ARN "
                "(arn:aws:iam::<account>:role/<name>)"
            )
        return self


# --- loading ----------------------------------------------------------------------------------


def _typed_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """MODELCI_* values are strings: an integer setting's is converted here, explicitly, so
    that validation stays strict (a TOML file's string is never a number)."""
    for section, keys in OVERRIDABLE.items():
        for key in keys:
            variable = f"MODELCI_{section.upper()}_{key.upper()}"
            value = environ.get(variable)
            if not value or (section, key) in LIST_KEYS:
                continue
            table = ProjectFile.model_fields[section].annotation
            assert isinstance(table, type) and issubclass(table, BaseModel)
            if table.model_fields[key].annotation is not int:
                continue
            try:
                data[section][key] = int(value)
            except ValueError:
                raise ConfigError(
                    f"{variable}: expected an integer, got {value!r}",
                    file=PROJECT_FILE,
                    key=f"{section}.{key}",
                ) from None
    return data


def validate_project_text(text: bytes | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """`modelci.toml`'s text (None: no file) under MODELCI_* overrides, validated, as the
    JSON-able dump the spec cache keeps."""
    return _validate_project(text, environ).model_dump(mode="json")


def _validate_project(text: bytes | None, environ: Mapping[str, str]) -> ProjectFile:
    data = parse_toml(text, PROJECT_FILE) if text is not None else {}
    data = _typed_overrides(apply_overrides(data, environ), environ)
    try:
        return ProjectFile.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, ProjectFile, PROJECT_FILE) from None


def load_project(root: Path, environ: Mapping[str, str] | None = None) -> ProjectFile:
    """The project settings: `modelci.toml` (optional) under MODELCI_* overrides."""
    path = root / PROJECT_FILE
    text = read_bytes(path, PROJECT_FILE) if path.is_file() else None
    return _validate_project(text, os.environ if environ is None else environ)


def validate_model(data: dict[str, Any], spec_file: str) -> ModelFile:
    """Validate one parsed `model.toml`."""
    try:
        return ModelFile.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, ModelFile, spec_file) from None


def validate_model_text(text: bytes, spec_file: str) -> dict[str, Any]:
    """One `model.toml`'s text validated, as the JSON-able dump the spec cache keeps."""
    return validate_model(parse_toml(text, spec_file), spec_file).model_dump(mode="json")


def parse_model(folder: str, data: dict[str, Any], spec_file: str) -> ModelSpec:
    """Validate one parsed `model.toml`; `folder` is the model folder relative to the root."""
    parsed = validate_model(data, spec_file)
    name = model_name(folder, parsed.model.name, spec_file)
    return ModelSpec(name=name, folder=folder, spec_file=spec_file, file=parsed)


def read_model(folder: str, blob: str, text: bytes, spec_file: str, cache: SpecCache) -> ModelSpec:
    """Validate one `model.toml`'s text (git blob id `blob`); `cache` learns the verdict."""
    try:
        parsed = validate_model(parse_toml(text, spec_file), spec_file)
    except ConfigError as error:
        cache.remember(blob, error)
        raise
    cache.remember(blob, parsed.model_dump(mode="json"))
    name = model_name(folder, parsed.model.name, spec_file)
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
