"""Credentials for an OCI registry, as docker reads them: the docker configuration
(`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: `auths`, `credHelpers`,
`credsStore`), as `docker login` writes them; for ECR without a login, a token from ECR's API
with boto3's credentials (`aws ecr get-login-password | docker login --username AWS
--password-stdin <account>.dkr.ecr.<region>.amazonaws.com` does the same by hand)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("modelci.oci")

ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def docker_credentials(host: str) -> tuple[str, str] | None:
    """The (username, secret) that `docker login` stored for `host`, or None."""
    folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helper = (config.get("credHelpers") or {}).get(host) or config.get("credsStore")
    entry = _auth_entry(config.get("auths") or {}, host)
    if entry is not None:
        if entry.get("auth"):
            username, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            return username, secret
        if entry.get("identitytoken"):
            return "<token>", str(entry["identitytoken"])
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
    if helper:
        return _from_helper(str(helper), host)
    return None


def _auth_entry(auths: Mapping[str, Any], host: str) -> dict[str, Any] | None:
    for key, value in auths.items():
        name = re.sub(r"^https?://", "", key).split("/", 1)[0]
        if name == host and isinstance(value, dict):
            return value
    return None


def _from_helper(helper: str, host: str) -> tuple[str, str] | None:
    """Ask `docker-credential-<helper>` (as docker does) for the host's credentials."""
    try:
        done = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=host,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            return None
        answer = json.loads(done.stdout)
        return str(answer["Username"]), str(answer["Secret"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def ecr_credentials(host: str) -> tuple[str, str] | None:
    """For an ECR host with no docker login: a token from ECR's GetAuthorizationToken, with
    boto3's standard credentials (they reach AWS's API, never the registry itself)."""
    match = ECR_HOST.match(host)
    if match is None:
        return None
    try:
        import boto3

        client = boto3.session.Session().client("ecr", region_name=match.group(2))
        data = client.get_authorization_token(registryIds=[match.group(1)])
        token = data["authorizationData"][0]["authorizationToken"]
    except Exception as error:  # no boto3, no credentials: the 401 that follows says what to do
        log.debug("no ECR token for %s: %s: %s", host, type(error).__name__, error)
        return None
    username, _, secret = base64.b64decode(token).decode().partition(":")
    return username, secret
