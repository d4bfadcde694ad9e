"""`modelci build`: each model's locked environment, and with --image its container image."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from modelci.envs.uv import Environment


@click.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option(
    "--write-lock", is_flag=True, help="Write requirements.lock beside each model, to be committed."
)
@click.option(
    "--image",
    is_flag=True,
    help="Also write a SageMaker-compatible Dockerfile and build it with docker or "
    "podman, FROM [image].base (exit 2, context kept, when neither answers).",
)
@click.option(
    "--registry",
    metavar="HOST/PREFIX",
    default=None,
    help="Image registry for the tag <registry>/<model>:<sha12> "
    "[default: [image].registry or $MODELCI_IMAGE_REGISTRY, else modelci.local].",
)
@click.option(
    "--push",
    is_flag=True,
    help="With --image: push each built image to its registry with the engine, and record "
    "its digest with the version.",
)
@json_option
@click.pass_obj
def build(
    workspace: Workspace,
    models: tuple[str, ...],
    write_lock: bool,
    image: bool,
    registry: str | None,
    push: bool,
    json_mode: bool,
) -> None:
    """Build each MODEL's environment: its requirements locked by uv (with hashes) and a
    virtualenv cached by hash under .modelci/envs/, reused when the lock has not changed."""
    output = Output(json_mode)
    if push and not image:
        from modelci.errors import ConfigError

        raise ConfigError("--push pushes the image that --image builds: give both", key="--push")
    root = workspace.root
    names = list(dict.fromkeys(models))
    entries: list[dict[str, Any]] = []
    seconds: list[float] = []
    hits = None if (write_lock or image) else _all_cached(workspace, names)
    if hits is not None:
        for name, (environment, took) in zip(names, hits, strict=True):
            entries.append(_entry(name, environment))
            seconds.append(took)
        output.result(
            {"environments": entries}, lambda console: _render(console, root, entries, seconds)
        )
        return

    from modelci.envs.uv import ensure_environment
    from modelci.spec import find_model

    specs = [find_model(workspace.models, name) for name in names]
    for model in specs:
        started = time.perf_counter()
        environment = ensure_environment(root, model, write_lock=write_lock, progress=output.info)
        seconds.append(time.perf_counter() - started)
        entries.append(_entry(model.name, environment))

    if image:
        from modelci.envs.docker import build_images

        images = build_images(
            workspace, specs, registry, push=push, progress=output.info, warn=output.warn
        )
        for entry, document in zip(entries, images, strict=True):
            entry["image"] = document

    result = {"environments": entries}
    output.result(result, lambda console: _render(console, root, entries, seconds))


def _entry(model: str, environment: Environment) -> dict[str, Any]:
    """One model's entry of the `--json` document."""
    return {
        "model": model,
        "lock_hash": environment.lock_hash,
        "env_hash": environment.env_hash,
        "path": str(environment.path),
        "python": str(environment.python),
        "status": "cached" if environment.cached else "built",
        "lock": str(environment.lock_path),
        "image": None,
    }


def _all_cached(workspace: Workspace, names: list[str]) -> list[tuple[Environment, float]] | None:
    """Each named model's environment with the seconds it took to find, when every one is
    already built; else None, and the caller takes the full path.

    Read from the spec cache (what validation made of each model.toml, by blob id), not
    through pydantic: loading it alone costs more than the whole cache hit is allowed to (a
    spec not validated yet is, once). Anything unusual (an invalid spec, an unknown name, a
    clash) goes down the full path, where validation reports it.
    """
    from modelci.envs.uv import ModelRef, cached_environment
    from modelci.errors import ConfigError
    from modelci.settings import MODEL_FILE, model_folders, model_name, read_bytes
    from modelci.speccache import SpecCache, blob_id

    root = workspace.root
    cache = SpecCache(root)
    refs: dict[str, ModelRef] = {}
    try:
        for folder in model_folders(workspace.files(), workspace.project_facts.models):
            spec_file = f"{folder}/{MODEL_FILE}"
            text = read_bytes(root / spec_file, spec_file)
            blob = blob_id(text)
            if blob not in cache.entries:  # validated once, here, for the next hit
                cache.validate(blob, text, spec_file)
            facts = cache.facts(blob, spec_file)
            name = model_name(folder, facts.name, spec_file)
            if name in refs:
                return None
            refs[name] = ModelRef(name, folder, facts.requirements)
    except ConfigError:
        return None
    finally:
        cache.save()
    found: list[tuple[Environment, float]] = []
    for name in names:
        started = time.perf_counter()
        try:
            environment = cached_environment(root, refs[name]) if name in refs else None
        except OSError:  # say, a requirements file that is gone: validation will name it
            return None
        if environment is None:
            return None
        found.append((environment, time.perf_counter() - started))
    return found


def _render(
    console: Console, root: Path, entries: list[dict[str, Any]], seconds: list[float]
) -> None:
    for entry, took in zip(entries, seconds, strict=True):
        status = entry["status"]
        colour = "green" if status == "built" else "cyan"
        path, lock = (escape(_shown(root, Path(entry[key]))) for key in ("path", "lock"))
        line = (
            f"{escape(entry['model'])}: [{colour}]{status}[/] {path} "
            f"(lock {entry['lock_hash'][:12]} from {lock}, {took:.2f} s)"
        )
        console.print(line)
        if entry["image"]:
            image = entry["image"]
            built = f"built with {image['engine']}" if image["built"] else "context written"
            if image.get("pushed"):
                built += f", pushed as {image['digest']}"
            console.print(f"  image {escape(image['tag'])}: {built}")


def _shown(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
