"""Stand-in container engines for tests: no docker or podman daemon can run here."""

from __future__ import annotations

import os
from pathlib import Path

from modelci.envs import docker


def fake_engines(folder: Path, info_exit: int, log: Path | None = None) -> None:
    """Stand-in `docker` and `podman` clients on PATH (no daemon can run here): `info` exits
    with `info_exit`; `build` records its arguments in `log`."""
    folder.mkdir(exist_ok=True)
    for engine in docker.ENGINES:
        script = folder / engine
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = info ]; then exit {info_exit}; fi\n'
            f'echo "{engine} $*" >> "{log or os.devnull}"\n'
        )
        script.chmod(0o755)
