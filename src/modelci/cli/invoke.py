"""`modelci invoke`: send one request to an endpoint."""

from __future__ import annotations

import base64
import os
import sys

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError, DeployFailed
from modelci.workspace import Workspace

# the bodies every endpoint reads (DESIGN.md: JSON, CSV and NumPy)
CONTENT_TYPES = {".json": "application/json", ".csv": "text/csv", ".npy": "application/x-npy"}


def content_type_of(data: str) -> str:
    """The media type of a body read from `data`: by its extension; JSON for stdin or any
    other extension."""
    if data == "-":
        return "application/json"
    return CONTENT_TYPES.get(os.path.splitext(data)[1].lower(), "application/json")


@click.command()
@click.argument("endpoint")
@click.option("--data", required=True, help="The request body: a file, or - for stdin.")
@click.option(
    "--content-type",
    default=None,
    help="The body's media type [default: by the file's extension: .csv text/csv, "
    ".npy application/x-npy, otherwise application/json].",
)
@click.option("--accept", default=None, help="The answer's media type.")
@json_option
@click.pass_obj
def invoke(
    workspace: Workspace,
    endpoint: str,
    data: str,
    content_type: str | None,
    accept: str | None,
    json_mode: bool,
) -> None:
    """Send the body to ENDPOINT (e.g. churn-staging) and print the answer."""
    from modelci.deploy import open_deployer

    output = Output(json_mode)
    if data == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            with open(data, "rb") as handle:
                body = handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read {data}: {exc.strerror}", key="--data") from None
    if content_type is None:
        content_type = content_type_of(data)
    answer = open_deployer(workspace).invoke(endpoint, body, content_type, accept)
    if json_mode:
        try:
            text: str | None = answer.body.decode()
        except UnicodeDecodeError:
            text = None
        output.result(
            {
                "endpoint": endpoint,
                "status": answer.status,
                "content_type": answer.content_type,
                "body": text,
                "body_b64": None if text is not None else base64.b64encode(answer.body).decode(),
            },
            lambda c: None,
        )
        if not 200 <= answer.status < 300:
            raise click.exceptions.Exit(1)  # one JSON document: the answer says what failed
    elif 200 <= answer.status < 300:
        sys.stdout.buffer.write(answer.body)
        if not answer.body.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    if not 200 <= answer.status < 300:
        raise DeployFailed(
            f"{endpoint} answered {answer.status}: {answer.body[:500].decode(errors='replace')}"
        )
