"""The dashboard's optional actions (`--allow-actions`): promote and rollback buttons.

Off by default. A person signs in with a token from the tokens file (one `ACTOR TOKEN` a line):
the server keeps the session in memory, sets an HttpOnly, SameSite=Strict cookie, and gives each
session a CSRF token that every form posts back; a post without both is refused (403). Each
move goes through the same health-checked deploy as `modelci promote` and `rollback`, recorded
with the token's actor.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from modelci.errors import ConfigError, ModelciError
from modelci.serve.auth import MIN_TOKEN_LENGTH
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.ui.app import Dashboard

COOKIE = "modelci_session"
MAX_FORM_BYTES = 16_384


@dataclass(frozen=True)
class Session:
    """A signed-in person: who the token says they are, and their form token."""

    actor: str
    csrf: str


def read_tokens(path: Path) -> dict[str, str]:
    """token -> actor, from a file of `ACTOR TOKEN` lines (`#` starts a comment)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(
            f"cannot read the tokens: {error.strerror}", file=path, key="--tokens"
        ) from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or len(parts[1]) < MIN_TOKEN_LENGTH or not parts[1].isascii():
            raise ConfigError(
                f"line {number}: expected `ACTOR TOKEN`, the token at least "
                f"{MIN_TOKEN_LENGTH} ASCII characters",
                file=path,
                key="--tokens",
            )
        tokens[parts[1]] = parts[0]
    if not tokens:
        raise ConfigError("no `ACTOR TOKEN` line: actions need a token", file=path, key="--tokens")
    return tokens


class ActingWorkspace(Workspace):
    """The dashboard's checkout, acting as the signed-in person (the events name them)."""

    def __init__(self, start: Path, actor: str):
        super().__init__(start)
        self._actor = actor

    def actor(self) -> str:
        return self._actor


class Actions:
    """Sign-in, sign-out, promote and rollback, for the dashboard over a checkout."""

    def __init__(self, root: Path, tokens: dict[str, str]):
        self.root = root
        self.tokens = tokens
        self.sessions: dict[str, Session] = {}

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE, ""))

    def actor_of(self, token: str) -> str | None:
        for known, actor in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return actor
        return None

    def routes(self, dashboard: Dashboard) -> list[Route]:
        """The sign-in, sign-out and move routes; every refusal is an error page, never a
        crash."""

        async def login(request: Request) -> Response:
            form = await _form(request)
            if form is None:
                return dashboard.render(request, "error.html", 400, message="form too large")
            actor = self.actor_of(str(form.get("token", "")))
            if actor is None:
                return dashboard.render(request, "error.html", 403, message="unknown token")
            key = secrets.token_urlsafe(32)
            self.sessions[key] = Session(actor, secrets.token_urlsafe(32))
            response = RedirectResponse(request.headers.get("referer") or "/", status_code=303)
            response.set_cookie(COOKIE, key, httponly=True, samesite="strict")
            return response

        async def logout(request: Request) -> Response:
            checked = await self._checked(request)
            if isinstance(checked, str):
                return dashboard.render(request, "error.html", 403, message=checked)
            self.sessions.pop(request.cookies.get(COOKIE, ""), None)
            response = RedirectResponse("/", status_code=303)
            response.delete_cookie(COOKIE)
            return response

        def move(kind: str) -> Callable[[Request], Any]:
            async def act(request: Request) -> Response:
                checked = await self._checked(request)
                if isinstance(checked, str):
                    return dashboard.render(request, "error.html", 403, message=checked)
                session, form = checked
                from starlette.concurrency import run_in_threadpool

                try:
                    outcome = await run_in_threadpool(self._move, kind, session.actor, form)
                except ModelciError as error:
                    code = 400 if isinstance(error, ConfigError) else 500
                    return dashboard.render(request, "error.html", code, message=error.render())
                return dashboard.render(request, "moved.html", outcome=outcome)

            return act

        return [
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/actions/promote", move("promote"), methods=["POST"]),
            Route("/actions/rollback", move("rollback"), methods=["POST"]),
        ]

    async def _checked(self, request: Request) -> str | tuple[Session, dict[str, str]]:
        """The session and form of a post, or why it is refused (no session, bad CSRF)."""
        session = self.session(request)
        if session is None:
            return "sign in first: actions need a token"
        form = await _form(request)
        if form is None:
            return "form too large"
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), session.csrf.encode()):
            return "the form's CSRF token does not match this session: reload the page"
        return session, form

    def _move(self, kind: str, actor: str, form: dict[str, str]) -> dict[str, Any]:
        """Promote or roll back, as `modelci promote` / `rollback` do, acting as `actor`."""
        from modelci.deploy import open_deployer
        from modelci.deploy.rollout import check_environment, deploy, rollback_target

        workspace = ActingWorkspace(self.root, actor)
        model = _field(form, "model")
        source: str | None = None  # a promote's: where the drift gate judges its captures
        with workspace.registry() as registry:
            if kind == "rollback":
                environment = _field(form, "environment")
                check_environment(workspace, environment)
                version = rollback_target(registry, model, environment, None)
            else:
                source, environment = _field(form, "source"), _field(form, "target")
                check_environment(workspace, source)
                check_environment(workspace, environment)
                pointer = registry.get_pointer(model, source)
                if pointer is None:
                    raise ConfigError(f"{source} serves no version of {model!r} to promote")
                version = pointer.version
            outcome = deploy(
                workspace,
                registry,
                open_deployer(workspace),
                model,
                environment,
                version=version,
                kind=kind,
                source=source,
                note=lambda _message: None,
            )
        return dict(outcome.to_json())


def _field(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise ConfigError(f"the form lacks {name!r}", key=name)
    return value


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's fields (urlencoded), or None when it is too large."""
    from urllib.parse import parse_qsl

    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    return dict(parse_qsl(body.decode(errors="replace")))
