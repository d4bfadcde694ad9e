"""The reference of every key of `modelci.toml` and `model.toml`, generated from the pydantic
models in `modelci.spec` (keys, types, defaults) and the meanings kept here, plus the
MODELCI_<SECTION>_<KEY> overrides of `modelci.settings`.

    .venv/bin/python -m modelci.configdoc > docs/configuration.md

A key the models have and `DESCRIPTIONS` lacks, or a description of a key the models no longer
have, is an error: the reference cannot drift from the code (tests/unit/test_configdoc.py
compares the committed file with this output).
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from modelci.settings import LIST_KEYS, MODEL_FILE, OVERRIDABLE, PROJECT_FILE
from modelci.spec import ModelFile, ProjectFile

COMMAND = ".venv/bin/python -m modelci.configdoc > docs/configuration.md"

# The key a table stands under where a mapping's values may be a table or a plain value
# (`[gates]`: expressions by metric name, and the one table `no_regression`).
TABLE_ENTRY = {(MODEL_FILE, "gates"): "no_regression"}
# The placeholder shown for the names of a mapping whose values are tables.
PLACEHOLDERS = {(PROJECT_FILE, "environments"): "<name>"}

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
        "registry": "The registry: versions, what each environment wants, the event log.",
        "registry.url": "`sqlite:///path` (relative to the repository root) or "
        "`postgresql://user@host/database` (install the `postgres` extra).",
        "store": "The artifact store: trained models, content-addressed by sha256.",
        "store.url": "A folder (relative to the repository root, or absolute, or `file:///`), "
        "`s3://bucket/prefix` (the `s3` extra) or `oci://host/repository`.",
        "train": "Where training jobs run.",
        "train.backend": "`local` (a child process in the model's environment), `ray` (a Ray "
        "job; see `[ray]`) or `sagemaker` (a SageMaker training job; see `[sagemaker]`).",
        "deploy": "Where endpoints run.",
        "deploy.backend": "`local` (the `modelci serve` host on this machine), `ray` (Ray Serve "
        "applications; see `[ray]`) or `sagemaker` (SageMaker endpoints; see `[sagemaker]`).",
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
        "gates": "Must all hold before a version is deployed; a change re-tests, not retrains.",
        "gates.<metric>": 'A metric\'s bound, such as `">= 0.85"`, `"< 0.3"` or '
        '`"between 0.1 0.2"`; the key `no_regression` takes a table instead.',
        "gates.no_regression": "The version may not be worse than the production version.",
        "gates.no_regression.metric": "The metric compared with the production version's.",
        "gates.no_regression.max_drop": "How far (absolutely) the metric may fall below "
        "production's.",
        "tests": "What `modelci test` checks besides gates; a change re-tests, not retrains.",
        "tests.golden": "Golden outputs (JSON lines of input and expected output), in the "
        "model's folder; `modelci golden record` writes them.",
        "tests.tolerance": "How far (relative or absolute) a number may be from its golden value.",
    },
}


class DescriptionError(Exception):
    """A key has no description, or a description names a key that does not exist."""


@dataclass(frozen=True)
class Key:
    """One documented key: its dotted name, type, default, whether it is a table, and the
    `Field(description=...)` spec.py gives it, if any."""

    name: str
    type: str
    default: str
    table: bool
    description: str | None = None


# --- types and defaults --------------------------------------------------------------------------

_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_PLURALS = {
    "string": "strings",
    "integer": "integers",
    "number": "numbers",
    "boolean": "booleans",
    "table": "tables",
}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation is (or is an optional of), else None."""
    for candidate in (annotation, *_union_members(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return ()


def _constraints(metadata: list[Any]) -> str:
    """Bounds and patterns of a field, as `> 0`, `<= 1`, `pattern ...`."""
    words: list[str] = []
    for item in metadata:
        for attribute, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attribute, None)
            if value is not None:
                words.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            words.append(f"matching `{pattern}`")
    return ", ".join(words)


def _non_empty(metadata: list[Any]) -> bool:
    return any(getattr(m, "min_length", None) == 1 for m in metadata)


def describe_type(annotation: Any, metadata: list[Any] | None = None) -> str:
    """An annotation in words: `integer > 0`, `list of non-empty strings`, `"a" or "b"`."""
    metadata = list(metadata or [])
    if get_origin(annotation) is Annotated:
        inner, *extra = get_args(annotation)
        return describe_type(inner, [*metadata, *extra])
    members = _union_members(annotation)
    if members:
        optional = type(None) in get_args(annotation)
        words = [describe_type(m) for m in members]
        text = either(dict.fromkeys(words))
        bounds = _constraints(metadata)
        text = f"{text} {bounds}" if bounds else text
        return f"{text} (optional)" if optional else text
    origin = get_origin(annotation)
    if origin is Literal:
        return either(f'`"{v}"`' if isinstance(v, str) else f"`{v}`" for v in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        return f"list of {_plural(describe_type(item))}"
    if origin is dict:
        _, value = get_args(annotation)
        return f"table of {_plural(describe_type(value))}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    name = _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)).lower())
    if name == "string" and _non_empty(metadata):
        name = "non-empty string"
    bounds = _constraints(metadata)
    return f"{name} {bounds}" if bounds else name


def either(words: Iterable[str]) -> str:
    """`a`, `a or b`, `a, b or c`."""
    listed = list(words)
    return " or ".join([", ".join(listed[:-1]), listed[-1]] if len(listed) > 2 else listed)


def _plural(words: str) -> str:
    """`string, integer or number` -> `strings, integers or numbers`."""
    for noun, plural in _PLURALS.items():
        words = re.sub(rf"\b{noun}\b", plural, words)
    return words


def toml_value(value: Any) -> str:
    """A default as it would be written in TOML."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        shown = {k: v for k, v in value.items() if v is not None}
        if not shown:
            return "{}"
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in shown.items()) + " }"
    return str(value)


def _default(name: str, field: FieldInfo, parent: BaseModel | None) -> tuple[bool, Any]:
    """(has a default, the default); inside a table with a default value, that value's."""
    if parent is not None:
        return True, getattr(parent, name)
    if field.default_factory is not None:
        return True, field.default_factory()  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return False, None
    return True, field.default


# --- walking the models ----------------------------------------------------------------------


def keys(file: str, model: type[BaseModel]) -> Iterator[Key]:
    """Every key of a file's model, tables before their keys, in the models' order."""
    yield from _walk(file, model, "", None)


def _walk(
    file: str, model: type[BaseModel], prefix: str, parent: BaseModel | None
) -> Iterator[Key]:
    for field_name, field in model.model_fields.items():
        name = f"{prefix}{field_name}"
        has_default, default = _default(field_name, field, parent)
        if not has_default:
            shown = "required"
        elif default is None:
            shown = "unset"
        else:
            shown = toml_value(default)
        annotation = field.annotation
        table = _model_of(annotation)
        if get_origin(annotation) is dict:
            _, value_type = get_args(annotation)
            entry = _model_of(value_type)
            yield Key(
                name,
                describe_type(annotation, field.metadata),
                shown,
                entry is not None,
                field.description,
            )
            if entry is not None:
                placeholder = PLACEHOLDERS.get((file, name), "<name>")
                if (file, name) in TABLE_ENTRY:
                    member = "string" if str in _union_members(value_type) else "value"
                    yield Key(f"{name}.<metric>", member, "unset", False)
                    placeholder = TABLE_ENTRY[(file, name)]
                yield Key(f"{name}.{placeholder}", "table", "unset", True)
                yield from _walk(file, entry, f"{name}.{placeholder}.", None)
            continue
        if table is not None:
            optional = bool(_union_members(annotation))
            kind = "table (optional)" if optional else "table"
            default_shown = "unset" if optional else "" if has_default else shown
            yield Key(name, kind, default_shown, True, field.description)
            yield from _walk(file, table, f"{name}.", default if has_default else None)
            continue
        yield Key(name, describe_type(annotation, field.metadata), shown, False, field.description)


def check_descriptions(
    documented: Mapping[str, list[Key]], descriptions: Mapping[str, Mapping[str, str]]
) -> None:
    """Every key described (here or by its field in spec.py), every description here of a
    real key; else DescriptionError listing what is wrong and how to fix it."""
    problems: list[str] = []
    for file, file_keys in documented.items():
        names = {k.name for k in file_keys}
        meanings = descriptions.get(file, {})
        described = set(meanings) | {k.name for k in file_keys if k.description}
        problems += [f"{file}: {n}: no description" for n in sorted(names - described)]
        problems += [
            f"{file}: {n}: described, but no such key" for n in sorted(set(meanings) - names)
        ]
    if problems:
        raise DescriptionError(
            "the meanings in src/modelci/configdoc.py (DESCRIPTIONS) do not match the keys of "
            "src/modelci/spec.py:\n  "
            + "\n  ".join(problems)
            + f"\nfix DESCRIPTIONS, then regenerate the reference: {COMMAND}"
        )


def check_overrides(project_keys: list[Key]) -> None:
    """Every MODELCI_<SECTION>_<KEY> names a key of modelci.toml."""
    names = {k.name for k in project_keys}
    unknown = [
        f"{section}.{key}"
        for section, keys_ in OVERRIDABLE.items()
        for key in keys_
        if f"{section}.{key}" not in names
    ]
    if unknown:
        raise DescriptionError(f"settings.OVERRIDABLE names unknown keys: {', '.join(unknown)}")


# --- rendering ---------------------------------------------------------------------------------

HEADER = f"""\
<!-- Generated from src/modelci/spec.py and src/modelci/configdoc.py; do not edit by hand.
     Regenerate: {COMMAND} -->

# Configuration reference

Two files configure modelci, both TOML and both validated strictly: an unknown key or a value
of the wrong type is an error (exit 2) naming the file and the dotted key.

- `{PROJECT_FILE}` at the repository root: project settings, all optional.
- `{MODEL_FILE}` in each model's folder: the model's spec; only `train.entrypoint` is required.

Types: a *table* is a TOML table (`[section]` or `{{ key = value }}`); `<name>` stands for a key
you choose. *unset* means the key has no value unless given, and the meaning says what happens
then.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(file: str, file_keys: list[Key], meanings: Mapping[str, str]) -> list[str]:
    def meaning(key: Key) -> str:
        return meanings.get(key.name) or key.description or ""

    lines = [f"## `{file}`", ""]
    top = [k for k in file_keys if "." not in k.name]
    for section in top:
        lines += [f"### `[{section.name}]`", "", meaning(section), ""]
        if section.default == "required":
            lines += ["Required.", ""]
        elif section.default:
            lines += [f"Default: `{section.default}`.", ""]
        inside = [k for k in file_keys if k.name.startswith(f"{section.name}.")]
        if not inside:
            lines += [f"Type: {section.type}.", ""]
            continue
        lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for key in inside:
            default = (
                f"`{key.default}`" if key.default not in ("", "required", "unset") else key.default
            )
            lines.append(
                f"| `{key.name}` | {_cell(key.type)} | {_cell(default or '')} | "
                f"{_cell(meaning(key))} |"
            )
        lines.append("")
    return lines


def _overrides() -> list[str]:
    lines = [
        "## Environment variables",
        "",
        f"Each of these keys of `{PROJECT_FILE}` can also be set by the variable "
        "`MODELCI_<SECTION>_<KEY>`, which wins over the file, so that CI secrets never sit in the "
        "repository. An empty value counts as unset (a CI secret that is not defined). A list "
        "takes comma-separated values.",
        "",
        "| variable | key | form |",
        "| --- | --- | --- |",
    ]
    for section, section_keys in OVERRIDABLE.items():
        for key in section_keys:
            form = "comma-separated list" if (section, key) in LIST_KEYS else "value"
            lines.append(
                f"| `MODELCI_{section.upper()}_{key.upper()}` | `{section}.{key}` | {form} |"
            )
    return [*lines, ""]


def render(descriptions: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The whole reference, as Markdown; raises DescriptionError when it would be incomplete."""
    meanings = DESCRIPTIONS if descriptions is None else descriptions
    documented = {
        PROJECT_FILE: list(keys(PROJECT_FILE, ProjectFile)),
        MODEL_FILE: list(keys(MODEL_FILE, ModelFile)),
    }
    check_descriptions(documented, meanings)
    check_overrides(documented[PROJECT_FILE])
    lines = [HEADER]
    for file, file_keys in documented.items():
        lines += _section(file, file_keys, meanings[file])
    lines += _overrides()
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    """Print the reference; a key without a description fails with the list of them."""
    try:
        sys.stdout.write(render())
    except DescriptionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
