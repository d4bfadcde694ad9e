"""The container engine modelci drives through its CLI: podman or docker, whichever answers (or
the one `[image].engine` names). Builds share the host's network (`--network=host`); containers
run on slirp4netns (podman) with their ports published on 127.0.0.1 only, never on a bridge
network that would turn on forwarding and NAT.

podman reads modelci's own containers.conf (`scripts/ensure-podman` writes it) through
CONTAINERS_CONF, unless the caller set CONTAINERS_CONF already.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelci.errors import ConfigError, EnvironmentFailed, ModelciError

ENGINES = ("docker", "podman")
ENGINE_TIMEOUT = 10.0  # seconds for `<engine> info`: an engine that answers does so at once
CONFIG_NAME = "containers.conf"
LOOPBACK = re.compile(r"^(localhost|127\.[0-9.]+|\[::1\])(:[0-9]+)?$")
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def config_files() -> list[Path]:
    """Where modelci's containers.conf may be, in the order looked at (ensure-podman writes
    the first as root, the second otherwise)."""
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path("/etc/modelci") / CONFIG_NAME, home / "modelci" / CONFIG_NAME]


@dataclass(frozen=True)
class Engine:
    """One container engine's CLI."""

    name: str  # "podman" or "docker"
    executable: str

    def environ(self) -> dict[str, str]:
        """The environment the CLI runs with: podman gets modelci's containers.conf."""
        environ = dict(os.environ)
        if self.name == "podman" and "CONTAINERS_CONF" not in environ:
            found = next((p for p in config_files() if p.is_file()), None)
            if found is not None:
                environ["CONTAINERS_CONF"] = str(found)
        return environ

    def command(self, *arguments: str) -> list[str]:
        return [self.executable, *arguments]

    def run(
        self,
        arguments: Sequence[str],
        *,
        what: str,
        timeout: float | None = None,
        error: type[ModelciError] = ModelciError,
        file: Path | None = None,
    ) -> str:
        """Run `<engine> ARGUMENTS` to its end; its stdout. A failure raises `error` (exit 1)
        saying `what` failed, with the engine's last lines."""
        try:
            done = subprocess.run(
                self.command(*arguments),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.environ(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise error(f"{self.name}: {what} took longer than {timeout:g} s", file=file) from None
        except OSError as exc:
            raise error(f"could not run {self.name}: {exc}", file=file) from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-20:])
            raise error(f"{self.name}: {what} failed:\n{tail}", file=file)
        return done.stdout

    def answers(self) -> bool:
        """Whether `info` answers: the daemon (docker) or the storage (podman) works."""
        try:
            done = subprocess.run(
                self.command("info"),
                capture_output=True,
                timeout=ENGINE_TIMEOUT,
                env=self.environ(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def has_image(self, reference: str) -> bool:
        """Whether the engine holds the image `reference` locally."""
        done = subprocess.run(
            self.command("image", "inspect", "--format", "{{.Id}}", reference),
            capture_output=True,
            env=self.environ(),
            check=False,
        )
        return done.returncode == 0

    def build(self, tag: str, context: Path, *, file: Path | None = None) -> None:
        """Build `context` as `tag`, on the host's network (pip reaches its index as the host
        does); a failure raises EnvironmentFailed naming the Dockerfile."""
        dockerfile = file or context / "Dockerfile"
        arguments = ["build", "--network=host", "-t", tag, "-f", str(dockerfile), str(context)]
        if self.name == "podman":
            arguments.insert(1, "--layers")
        self.run(arguments, what=f"build of {tag}", error=EnvironmentFailed, file=dockerfile)

    def push(self, tag: str) -> str:
        """Push `tag` to its registry; the digest of the manifest pushed."""
        hint = f" (is `{self.name} login` done for its registry?)"
        if self.name != "podman":
            out = self.run(["push", tag], what=f"push of {tag}{hint}")
            match = PUSHED_DIGEST.search(out)
            if match is None:
                raise ModelciError(f"{self.name} push of {tag} printed no digest")
            return match.group(1)
        with tempfile.TemporaryDirectory(prefix="modelci-push-") as folder:
            digest_file = Path(folder) / "digest"
            arguments = ["push", *_tls(tag), "--digestfile", str(digest_file), tag]
            self.run(arguments, what=f"push of {tag}{hint}")
            return digest_file.read_text().strip()

    def pull(self, reference: str) -> None:
        """Pull `reference` (`repository:tag` or `repository@sha256:...`)."""
        tls = _tls(reference) if self.name == "podman" else []
        self.run(["pull", *tls, reference], what=f"pull of {reference}")

    def label(self, reference: str, name: str) -> str | None:
        """A label of a local image."""
        out = self.run(
            ["image", "inspect", "--format", f'{{{{index .Labels "{name}"}}}}', reference],
            what=f"inspect of {reference}",
        ).strip()
        return None if out in ("", "<no value>") else out

    def size(self, reference: str) -> int:
        """A local image's size in bytes."""
        out = self.run(
            ["image", "inspect", "--format", "{{.Size}}", reference], what=f"inspect of {reference}"
        )
        return int(out.strip())


def _tls(reference: str) -> list[str]:
    """podman verifies TLS for every registry; one on this machine's loopback is plain http
    (as docker assumes for 127.0.0.0/8)."""
    host = reference.partition("/")[0]
    return ["--tls-verify=false"] if LOOPBACK.match(host) else []


def find_engine(preferred: str | None = None) -> Engine | None:
    """The engine `preferred` names, else the first of docker and podman whose `info`
    answers; None when none does."""
    for name in (preferred,) if preferred else ENGINES:
        executable = shutil.which(name)
        if executable is None:
            continue
        engine = Engine(name, executable)
        if engine.answers():
            return engine
    return None


def require_engine(preferred: str | None = None) -> Engine:
    """The engine that answers, or a ConfigError (exit 2) saying how to get one."""
    engine = find_engine(preferred)
    if engine is None:
        which = preferred or " or ".join(ENGINES)
        raise ConfigError(
            f"no container engine answers ({which}); on Debian, scripts/ensure-podman "
            "installs and configures podman",
            key="image.engine" if preferred else None,
        )
    return engine
