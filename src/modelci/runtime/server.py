"""`python -m modelci.runtime.server --model-dir DIR`: serve one model version over HTTP with
uvicorn.

Runs inside the model's own environment, so it imports only the standard library, Starlette,
uvicorn, prometheus_client, NumPy and the model's own libraries.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelci.runtime.app import CONFIG_VARIABLE, DEFAULT_MAX_BODY_BYTES, create_app
from modelci.runtime.errors import HandlerNotFound, ServeError
from modelci.runtime.handlers import find_builtin
from modelci.runtime.metrics import MULTIPROCESS_VARIABLE


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; defaults bind 127.0.0.1:8080 with one worker."""
    parser = argparse.ArgumentParser(prog="python -m modelci.runtime.server", description=__doc__)
    parser.add_argument("--model-dir", help="the unpacked model.tar.gz (not with --shared)")
    parser.add_argument(
        "--model-from-stdin",
        action="store_true",
        help="load the model libraries first, then read one JSON line "
        '{"model_dir", "metadata_file"} from stdin (its end: exit 0)',
    )
    parser.add_argument(
        "--shared", action="store_true", help="serve the versions the host registers"
    )
    parser.add_argument("--idle-unload-s", type=float, default=0.0, help="--shared: 0 = never")
    parser.add_argument("--max-loaded", type=int, default=0, help="--shared: 0 = no cap")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--handler", help="path of the model's inference.py")
    parser.add_argument("--metadata-file", help="JSON: model, version, commit, environment")
    parser.add_argument("--batch-max-size", type=int, default=64, help="rows per predict call")
    parser.add_argument("--batch-max-wait-ms", type=float, default=2.0)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if not args.shared and not args.model_dir and not args.model_from_stdin:
        parser.error("--model-dir is required (or --shared, or --model-from-stdin)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.model_from_stdin and (args.workers != 1 or args.shared):
        parser.error("--model-from-stdin serves one version with one worker")
    if args.batch_max_size < 1:
        parser.error("--batch-max-size must be at least 1")
    return args


def _precheck(model_dir: Path, handler: str | None) -> None:
    """Fail in the parent, not in every worker, when nothing could possibly be served."""
    if handler is not None:
        if not Path(handler).is_file():
            raise HandlerNotFound(f"handler {handler} does not exist")
        return
    if any((model_dir / name).is_file() for name in ("code/inference.py", "inference.py")):
        return
    if find_builtin(model_dir) is None:
        raise HandlerNotFound(f"no handler fits {model_dir}: no known model file, no inference.py")


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model and serve it until interrupted; 1 when it cannot be loaded."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    import uvicorn  # imported here: it brings click, which importing the app must not

    from modelci.runtime.protocol import HttpProtocol

    listener: socket.socket | None = None
    if args.model_from_stdin:  # a spare, started ahead: the model's libraries load meanwhile
        from modelci.runtime.introspection import preload

        # the port is bound from the start: nothing else takes it while the spare waits
        listener = socket.create_server((args.host, args.port))
        preload()
        line = sys.stdin.readline()
        if not line.strip():
            return 0
        told = json.loads(line)
        args.model_dir, args.metadata_file = told["model_dir"], told.get("metadata_file")
    metadata: dict[str, Any] | None = None
    if args.metadata_file:
        metadata = json.loads(Path(args.metadata_file).read_text())
    config = {
        "model_dir": str(Path(args.model_dir or ".").resolve()),
        "handler_path": str(Path(args.handler).resolve()) if args.handler else None,
        "metadata": metadata,
        "batch_max_size": args.batch_max_size,
        "batch_max_wait_ms": args.batch_max_wait_ms,
        "max_body_bytes": args.max_body_bytes,
    }
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "access_log": False,
        "log_level": args.log_level,
        "server_header": False,
        "http": HttpProtocol,
    }
    if args.shared:  # several versions of one environment, loaded on first use
        from modelci.runtime.shared import create_shared_app

        uvicorn.run(create_shared_app(args.idle_unload_s, args.max_loaded), **options)
        return 0
    try:
        if args.workers == 1:
            app = create_app(config.pop("model_dir"), **config)
            if listener is not None:
                uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[listener])
            else:
                uvicorn.run(app, **options)
            return 0
        _precheck(Path(config["model_dir"]), config["handler_path"])
    except ServeError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1

    # Several workers: each process loads the model itself; metrics are shared through files.
    os.environ[CONFIG_VARIABLE] = json.dumps(config)
    metrics_dir = None
    if not os.environ.get(MULTIPROCESS_VARIABLE):
        metrics_dir = tempfile.mkdtemp(prefix="modelci-metrics-")
        os.environ[MULTIPROCESS_VARIABLE] = metrics_dir
    try:
        uvicorn.run(
            "modelci.runtime.app:app_from_environment",
            factory=True,
            workers=args.workers,
            **options,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
