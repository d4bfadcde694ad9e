"""The training lease: while a version trains, its record names who trains it and until when.
Another pipeline does not train the same version at once; a pipeline that died (killed,
machine lost) blocks nobody past its lease, and on the same machine not even that long, since
a dead owner's process is seen to be gone; the version it left `training` is then marked
failed by the next `status` or `run`. `--break-lease` takes a lease at once."""

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
from modelci.registry.base import Event, Registry, VersionRecord

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
    holder = f"{lease.get('host')}:{lease.get('pid')}"
    if _own(lease):
        return None
    if _dead(lease) or break_lease:
        return holder
    until = time.strftime("%H:%M:%S", time.localtime(float(lease["expires"])))
    held = LeaseHeld(
        f"{record.version} is being trained by {holder} (lease until {until}); "
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


def reap_interrupted(registry: Registry, note: Callable[[str], None]) -> list[str]:
    """Mark failed every version left `training` by a pipeline that died (its lease expired,
    or its process is gone), with the reason; the versions marked. A later `train` or `run`
    of the version trains it again."""
    reaped: list[str] = []
    for record in registry.list_versions():
        if record.status != "training" or not _abandoned(record):
            continue
        current = registry.get_version(record.version)  # just before writing: still abandoned?
        if current is None or current.status != "training" or not _abandoned(current):
            continue
        lease = current.details.get("lease") or {}
        reason = (
            f"training was interrupted: {lease.get('host')}:{lease.get('pid')}, which trained "
            "it, ended without recording a result"
        )
        registry.update_version(
            current.version,
            status="failed",
            details={**current.details, "reason": reason, "interrupted": True},
        )
        registry.append_event(
            Event(
                kind="train_failed",
                model=current.model,
                version=current.version,
                commit=current.commit,
                details={"reason": reason, "interrupted": True},
            )
        )
        note(f"{current.version}: {reason}")
        reaped.append(current.version)
    return reaped


def _abandoned(record: VersionRecord) -> bool:
    """Whether a `training` version's lease is another process's, and dead."""
    lease = record.details.get("lease")
    if not isinstance(lease, dict):
        return False  # recorded by an older modelci without a lease: leave it be
    return not _own(lease) and _dead(lease)


def _own(lease: dict[str, Any]) -> bool:
    return lease.get("pid") == os.getpid() and lease.get("host") == socket.gethostname()


def _dead(lease: dict[str, Any]) -> bool:
    """The lease expired, or its owner is gone."""
    return float(lease.get("expires", 0)) < time.time() or not owner_alive(lease)
