"""The `modelci` command: one group whose subcommands are imported only when called.

This is the one place that catches ModelciError: it prints the message (or one JSON document
under --json) and exits with the error's code. `--traceback` re-raises instead.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

import click

from modelci import __version__
from modelci.console import Output
from modelci.errors import ConfigError, ModelciError, read_only

# name -> ("module:attribute", one-line help). Modules load only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "changed": ("modelci.cli.changed:changed", "List the models a commit range touches."),
    "validate": ("modelci.cli.validate:validate", "Check modelci.toml and every model.toml."),
    "build": ("modelci.cli.build:build", "Build each model's locked environment."),
    "base-image": (
        "modelci.cli.base_image:base_image",
        "Build a base image from Debian packages (where none can be pulled); print its tag.",
    ),
    "train": ("modelci.cli.train:train", "Train models from a clean export of a commit."),
    "test": ("modelci.cli.test:test", "Run reproducibility, golden and gate checks."),
    "deploy": ("modelci.cli.deploy:deploy", "Deploy a version to an environment."),
    "undeploy": ("modelci.cli.undeploy:undeploy", "Stop serving a model in an environment."),
    "promote": ("modelci.cli.moves:promote", "Promote a version to the next environment."),
    "rollback": ("modelci.cli.moves:rollback", "Return an environment to an earlier version."),
    "approve": ("modelci.cli.approve:approve", "Approve a version for an environment."),
    "alias": ("modelci.cli.moves:alias", "Set or show an alias such as `latest`."),
    "status": ("modelci.cli.status:status", "Show what each environment runs."),
    "history": ("modelci.cli.status:history", "Show a model's events, newest first."),
    "run": ("modelci.cli.pipelines:run", "The merge pipeline for every changed model."),
    "release": ("modelci.cli.pipelines:release", "The tag pipeline: promote to production."),
    "serve": ("modelci.cli.serve:serve", "Host every locally deployed endpoint."),
    "invoke": ("modelci.cli.invoke:invoke", "Send a request to an endpoint."),
    "sample": ("modelci.cli.sample:sample", "Write a channel's deterministic sample."),
    "golden": ("modelci.cli.golden:golden", "Record golden outputs."),
    "registry": ("modelci.cli.registry:registry", "Manage the registry (init, upgrade)."),
    "ci-config": ("modelci.cli.ci_config:ci_config", "Write a CI configuration."),
    "init": ("modelci.cli.init:init", "Write a starter model repository."),
    "ui": ("modelci.cli.ui:ui", "Serve the dashboard over the registry."),
    "report": ("modelci.cli.report:report", "What a pull request changes, for a PR comment."),
    "capture": ("modelci.cli.capture:capture", "List or fetch an endpoint's captured requests."),
    "drift": ("modelci.cli.drift:drift", "Compare captured requests with the training data."),
    "shadow": (
        "modelci.cli.shadow:shadow",
        "How a shadow's candidate compares with the live version.",
    ),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        from modelci.loader import load

        command: click.Command = load(COMMANDS[cmd_name][0], what=f"`modelci {cmd_name}`")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="modelci", message="%(prog)s %(version)s")
@click.option(
    "-C",
    "--repo",
    "repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run as if started in DIR (like git -C).",
)
@click.option("--traceback", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, traceback: bool) -> None:
    """Continuous integration and delivery for machine-learning models kept in git."""
    from modelci.workspace import Workspace

    if repo is not None and not repo.is_dir():
        raise ConfigError(f"-C {repo}: no such directory")
    ctx.obj = Workspace(repo)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `modelci` script (argv None) or of a caller in the same process."""
    code = run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        leave(code)
    sys.exit(code)


def run(args: list[str]) -> int:
    """Run one command line; its exit code, errors printed as the output mode wants them."""
    output = Output(json_mode="--json" in args)
    try:
        # without standalone mode click returns an Exit's code instead of exiting
        code = cli.main(args=args, prog_name="modelci", standalone_mode=False)
    except ModelciError as error:
        if "--traceback" in args:
            raise
        output.error(error)
        return error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    except OSError as error:  # a write to a read-only .modelci/ or repository: exit 2
        refused = read_only(error)
        if refused is None or "--traceback" in args:
            raise
        output.error(refused)
        return refused.exit_code
    except click.Abort:
        output.err.print("aborted")
        return 1
    except click.ClickException as error:
        if output.json_mode:
            output.error(ConfigError(error.format_message()))
        else:
            error.show()
        return 2 if isinstance(error, click.UsageError) else error.exit_code
    return code if isinstance(code, int) else 0


def leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown, as mypy's hard_exit does: freeing every object
    SQLAlchemy and pydantic made costs 0.1-0.15 s here, a third of a quick command. atexit
    handlers still run and the streams are flushed; while a non-daemon thread still runs,
    the ordinary exit waits for it."""
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


def allow_local_option(function: Any) -> Any:
    """`--allow-local` (or MODELCI_ALLOW_LOCAL=1) for a command that records or deploys
    versions: under CI=true it refuses settings that end with the runner unless given
    (`modelci.throwaway`). Put it under `@click.pass_obj`: it checks the workspace first."""

    @functools.wraps(function)
    def checked(workspace: Any, *args: Any, allow_local: bool, **kwargs: Any) -> Any:
        from modelci.throwaway import refuse_throwaway

        refuse_throwaway(workspace, allow_local)
        return function(workspace, *args, **kwargs)

    return click.option(
        "--allow-local",
        is_flag=True,
        envvar="MODELCI_ALLOW_LOCAL",
        help="Under CI=true, use a registry, store or endpoints on this runner anyway.",
    )(checked)


def json_option(function: Any) -> Any:
    """The `--json` flag every command takes."""
    return click.option("--json", "json_mode", is_flag=True, help="Print one JSON document.")(
        function
    )
