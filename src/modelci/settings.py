"""Reading TOML files and MODELCI_* overrides into plain data, without pydantic; model
folders and names; globs.

`spec.py` validates what this reads (it is the one reader of a spec); the fast paths read
spec.py's verdicts from the spec cache (`speccache.py`) and use the helpers here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError

PROJECT_FILE = "modelci.toml"
DEFAULT_URLS = {"registry": "sqlite:///.modelci/registry.db", "store": ".modelci/artifacts"}
MODEL_FILE = "model.toml"
MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,54}$")

# The sections of modelci.toml that MODELCI_<SECTION>_<KEY> variables may set.
OVERRIDABLE = {
    "project": ("main", "models", "shared"),
    "registry": ("url",),
    "store": ("url",),
    "train": ("backend",),
    "deploy": ("backend", "timeout"),
    "image": ("base", "registry", "engine", "ca_bundle"),
    "ray": ("address", "dashboard_url", "serve_host", "serve_port"),
    "sagemaker": (
        "role_arn",
        "region",
        "bucket",
        "instance_type",
        "instance_count",
        "image_uri",
        "framework_version",
        "max_wait_s",
        "endpoint_instance_type",
        "endpoint_instance_count",
        "alarms",
    ),
    "serve": ("isolation", "idle_unload", "max_loaded"),
}
LIST_KEYS = {("project", "models"), ("project", "shared"), ("sagemaker", "alarms")}


def parse_toml(text: str | bytes, file: Path | str) -> dict[str, Any]:
    """Parse TOML text; a syntax error names the file, line and column."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=file) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file) from None


def read_bytes(path: Path, shown_as: Path | str | None = None) -> bytes:
    """A file's content; an unreadable file is a ConfigError naming it as `shown_as`."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=shown_as or path) from None


def read_toml(path: Path, shown_as: Path | str | None = None) -> dict[str, Any]:
    """Read and parse a TOML file, naming it as `shown_as` in errors."""
    return parse_toml(read_bytes(path, shown_as), shown_as or path)


def model_name(folder: str, explicit: str | None, spec_file: str) -> str:
    """A model's name: `[model].name` (validated as a spec is), else its folder's, which must
    be a valid name too."""
    if explicit:
        return explicit
    name = folder.rsplit("/", 1)[-1]
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} (the folder's name) is not a valid model name: it must match "
            f"{MODEL_NAME.pattern} so that `<name>-staging` is a valid endpoint name; set "
            "[model].name",
            file=spec_file,
            key="model.name",
        )
    return name


def apply_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """modelci.toml's data with MODELCI_<SECTION>_<KEY> variables laid over it.

    A list setting (`MODELCI_PROJECT_MODELS`) takes comma-separated values.
    """
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, keys in OVERRIDABLE.items():
        for key in keys:
            value = environ.get(f"MODELCI_{section.upper()}_{key.upper()}")
            if not value:  # unset, or a CI secret that is not defined (an empty string)
                continue
            target = merged.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError("expected a table", file=PROJECT_FILE, key=section)
            if (section, key) in LIST_KEYS:
                target[key] = [v.strip() for v in value.split(",") if v.strip()]
            else:
                target[key] = value
    return merged


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository-relative glob as a regex: `**` spans folders, `*` and `?` stay in one."""
    pattern = pattern.strip("/")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")  # zero or more whole folders
                i += 3
            else:
                out.append(".*")
                i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    # a pattern naming a folder also covers what is inside it
    return re.compile("".join(out) + "(?:/.*)?")


def model_folders(files: Iterable[str], patterns: list[str]) -> list[str]:
    """Folders (relative, sorted) matching the project's `models` globs that hold a model.toml."""
    matchers = [glob_regex(f"{p.strip('/')}/{MODEL_FILE}") for p in patterns]
    suffix = f"/{MODEL_FILE}"
    return sorted(
        f[: -len(suffix)]
        for f in files
        if f.endswith(suffix) and any(m.fullmatch(f) for m in matchers)
    )


def literal_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard: where its matches must live."""
    folders: list[str] = []
    for part in pattern.strip("/").split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        folders.append(part)
    return "/".join(folders)
