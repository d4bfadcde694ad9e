"""`modelci ci-config`: write a CI configuration that runs `run` and `release`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from modelci.ciconfig import PROVIDERS, default_path, extras_for, render
from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError
from modelci.workspace import Workspace


@click.command(name="ci-config")
@click.argument("provider", type=click.Choice(list(PROVIDERS)), metavar="{github|circleci}")
@click.option(
    "--output",
    "-o",
    "output_path",
    default=None,
    metavar="PATH",
    help="Where to write it (default: .github/workflows/modelci.yml or "
    ".circleci/config.yml in the repository); `-` prints it.",
)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
@click.option(
    "--main",
    "main_branch",
    default=None,
    metavar="BRANCH",
    help="The branch whose pushes run `modelci run` (default: [project].main).",
)
@click.option(
    "--python",
    "python_version",
    default="3.11",
    metavar="VERSION",
    show_default=True,
    help="The Python version the CI runs modelci with.",
)
@click.option(
    "--extras",
    default=None,
    metavar="NAMES",
    help="modelci's extras the CI installs, comma-separated (postgres, s3, sagemaker, ray, "
    "parquet; default: what the project's registry, store and backends need; '' for none).",
)
@click.option(
    "--aws/--no-aws",
    default=None,
    help="Get AWS credentials through the CI's OIDC token (default: when the s3 or "
    "sagemaker extra is installed).",
)
@json_option
@click.pass_obj
def ci_config(
    workspace: Workspace,
    provider: str,
    output_path: str | None,
    force: bool,
    main_branch: str | None,
    python_version: str,
    extras: str | None,
    aws: bool | None,
    json_mode: bool,
) -> None:
    """Write a CI configuration for PROVIDER that runs `modelci run` on every push to the main
    branch and `modelci release TAG` on every tag, caches the models' environments and uv's
    cache, installs exactly this modelci with the extras the project needs, reads
    MODELCI_REGISTRY_URL, MODELCI_STORE_URL and MODELCI_DEPLOY_BACKEND from the CI's secrets and,
    where AWS is used, gets credentials through the CI's OIDC token.

    An existing file is never overwritten without --force.
    """
    output = Output(json_mode)
    project = workspace.project
    main = main_branch if main_branch is not None else project.project.main
    chosen = (
        tuple(e.strip() for e in extras.split(",") if e.strip())
        if extras is not None
        else extras_for(
            registry_url=project.registry.url,
            store_url=project.store.url,
            backends=(project.train.backend, project.deploy.backend),
        )
    )
    uses_aws = aws if aws is not None else bool({"s3", "sagemaker"} & set(chosen))
    try:
        text = render(provider, main=main, python=python_version, extras=chosen, aws=uses_aws)
    except ConfigError as error:
        if error.key == "--main" and main_branch is None:
            # the branch came from modelci.toml: name that file and key instead
            raise ConfigError(error.message, file="modelci.toml", key="project.main") from None
        raise

    if output_path == "-":
        if json_mode:
            output.result(
                {"provider": provider, "path": "-", "written": False, "content": text},
                lambda console: None,
            )
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        return

    if output_path is None:
        path = workspace.root / default_path(provider)
    else:
        # relative to where modelci was started, -C included (as git -C does)
        path = workspace.start / output_path
    shown = _shown(path, workspace)
    if path.is_dir():
        raise ConfigError("is a directory: name a file with --output", file=shown)
    if path.exists() and not force:
        raise ConfigError("exists already: pass --force to overwrite it", file=shown)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    except OSError as error:
        raise ConfigError(f"cannot write it: {error.strerror}", file=shown) from None

    def render_result(console: object) -> None:
        output.out.print(f"wrote {shown}")

    output.result({"provider": provider, "path": shown, "written": True}, render_result)
    if provider == "github":
        output.info(
            "next: add the repository secrets MODELCI_REGISTRY_URL, MODELCI_STORE_URL and "
            "MODELCI_DEPLOY_BACKEND"
            + (" (and AWS_ROLE_ARN, AWS_REGION)" if uses_aws else "")
            + ", then commit the file"
        )
    else:
        output.info(
            "next: create a CircleCI context named `modelci` holding MODELCI_REGISTRY_URL, "
            "MODELCI_STORE_URL and MODELCI_DEPLOY_BACKEND"
            + (" (and AWS_ROLE_ARN, AWS_REGION)" if uses_aws else "")
            + ", then commit the file"
        )


def _shown(path: Path, workspace: Workspace) -> str:
    """`path` relative to where modelci was started when it lies below, else absolute."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(workspace.start))
    except ValueError:
        return str(resolved)
