"""The training lease: while a version trains, its record names who trains it and until when.
Another pipeline does not train the same version at once; a pipeline that died (killed,
machine lost) blocks nobody past its lease, and on the same machine not even that long, since
a dead owner's process is seen to be gone. `--break-lease` takes a lease at once."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from modelci.errors import ModelciError
from modelci.processes import owner, owner_alive
from modelci.registry.base import Registry, VersionRecord

DEFAULT_LEASE_S = 600.0  # ten minutes; renewed while the job runs


class LeaseHeld(ModelciError):
    """Another pipeline is training this version now."""

    version = ""  # the version whose lease is held


def lease_seconds() -> float:
    return float(os.environ.get("MODELCI_TRAIN_LEASE_S") or DEFAULT_LEASE_S)


def new_lease() -> dict[str, Any]:
    """A lease owned by this process."""
    return {**owner(), "expires": time.time() + lease_seconds()}


def check(record: VersionRecord, *, break_lease: bool) -> str | None:
    """Raise LeaseHeld when another live pipeline trains `record`; else say whose lease, if
    any, is taken over."""
    lease = record.details.get("lease")
    if record.status != "training" or not isinstance(lease, dict):
        return None
    owner = f"{lease.get('host')}:{lease.get('pid')}"
    if lease.get("pid") == os.getpid() and lease.get("host") == socket.gethostname():
        return None
    expired = float(lease.get("expires", 0)) < time.time()
    if expired or not owner_alive(lease) or break_lease:
        return owner
    until = time.strftime("%H:%M:%S", time.localtime(float(lease["expires"])))
    held = LeaseHeld(
        f"{record.version} is being trained by {owner} (lease until {until}); "
        "wait for it, or take it now with --break-lease"
    )
    held.version = record.version
    raise held


def wait_for(
    registry: Registry, version: str, note: Callable[[str], None], *, every_s: float = 15.0
) -> VersionRecord | None:
    """Wait while another live pipeline trains `version`, saying so every `every_s` seconds;
    the record as it left it (ready, failed, or with a lease that expired or whose owner
    died). Bounded by the lease's end: a holder that stops renewing it is waited for no
    longer."""
    said = -every_s
    while True:
        record = registry.get_version(version)
        if record is None:
            return None
        try:
            check(record, break_lease=False)
        except LeaseHeld as held:
            if time.monotonic() - said >= every_s:
                note(f"waiting: {held.message.split(';')[0]}")
                said = time.monotonic()
            time.sleep(0.5)
            continue
        return record


@contextmanager
def renewed(registry: Registry, version: str) -> Iterator[None]:
    """Keep this process's lease on `version` alive while the block runs."""
    stop = threading.Event()
    period = max(lease_seconds() / 3, 1.0)

    def renew() -> None:
        while not stop.wait(period):
            try:
                record = registry.get_version(version)
                if record is None or record.status != "training":
                    return
                registry.update_version(version, details={**record.details, "lease": new_lease()})
            except ModelciError:
                continue  # a registry hiccup: try again next period

    thread = threading.Thread(target=renew, daemon=True, name=f"lease-{version}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
