"""Who may call an endpoint host: a host that listens beyond loopback needs a token, and with
a token set every route but `/ping` asks for it, as `Authorization: Bearer <token>` or (for AWS
SDK clients, whose `Authorization` header carries their SigV4 signature) `X-Modelci-Token:
<token>`. Standard library only: the CLI checks all this before the host imports anything."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError

TOKEN_VARIABLE = "MODELCI_SERVE_TOKEN"
TOKEN_HEADER = "x-modelci-token"
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether an address to bind reaches only this machine (a name other than localhost may
    resolve to anything, so it counts as exposed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(token_file: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The host's token: the file's first line, else MODELCI_SERVE_TOKEN (empty: unset)."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as error:
            raise ConfigError(
                f"cannot read the token: {error.strerror}", file=token_file, key="--token-file"
            ) from None
        where: dict[str, Any] = {"file": token_file, "key": "--token-file"}
    else:
        token = environ.get(TOKEN_VARIABLE, "").strip()
        where = {"key": TOKEN_VARIABLE}
        if not token:
            return None
    if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        raise ConfigError(
            f"the token must be at least {MIN_TOKEN_LENGTH} printable ASCII characters "
            "(e.g. `openssl rand -hex 32`)",
            **where,
        )
    return token


def check_exposure(host: str, token: str | None, insecure: bool) -> str | None:
    """Refuse (ConfigError, exit 2) to listen beyond loopback without a token, unless
    `insecure`; the warning to show when listening there without one."""
    if token is not None or is_loopback(host):
        return None
    if not insecure:
        raise ConfigError(
            f"{host} is reachable from other machines: give the host a token "
            f"({TOKEN_VARIABLE} or --token-file), or pass --insecure to serve without one",
            key="--host",
        )
    return f"serving on {host} without a token (--insecure): anyone who can reach it can call it"


def authorized(headers: Mapping[str, str], token: str) -> bool:
    """Whether the request carries the token (compared in constant time)."""
    expected = token.encode()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    supplied = [value.strip()] if scheme.lower() == "bearer" else []
    if extra := headers.get(TOKEN_HEADER):
        supplied.append(extra.strip())
    return any(hmac.compare_digest(given.encode(), expected) for given in supplied)


def client_token(state: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str | None:
    """The token a local client (deploy, invoke, `serve --status`) sends to the running host:
    MODELCI_SERVE_TOKEN, else the file the host was given (its path is in its state file)."""
    if token := environ.get(TOKEN_VARIABLE, "").strip():
        return token
    path = state.get("token_file")
    if not path:
        return None
    try:
        return Path(str(path)).read_text().strip() or None
    except OSError:
        return None
