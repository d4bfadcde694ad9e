"""`modelci report`: what a pull request changes, as Markdown, HTML or JSON."""

from __future__ import annotations

import json
import sys

import click

from modelci.workspace import Workspace


@click.command()
@click.option(
    "--base",
    default=None,
    help="Compare from this revision, e.g. origin/main (default: as `changed` does).",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(["markdown", "html", "json"]),
    default="markdown",
    show_default=True,
    help="Markdown for a PR comment, HTML for a CI artifact, JSON for scripts.",
)
@click.option(
    "--dashboard-url",
    default=None,
    metavar="URL",
    help="The dashboard's address, for links (default: $MODELCI_UI_URL).",
)
@click.option("--json", "json_mode", is_flag=True, help="The same as --format json.")
@click.pass_obj
def report(
    workspace: Workspace, base: str | None, form: str, dashboard_url: str | None, json_mode: bool
) -> None:
    """Report the models the commits from BASE to HEAD change: their new version's tests,
    gates and metrics against the version production serves, with the change."""
    from modelci.pullreport import pull_request_report, to_html, to_markdown

    document = pull_request_report(workspace, base, dashboard_url)
    if json_mode or form == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif form == "html":
        sys.stdout.write(to_html(document))
    else:
        sys.stdout.write(to_markdown(document))
