"""The dashboard's Starlette application: stable URLs, one page each, rendered on the server.

Pages read the registry in a worker thread (SQLAlchemy blocks); a bad query parameter is a 400
page naming it, an unknown model or version a 404, an unreadable registry a 503: the server
never dies of a request.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from modelci.errors import ModelciError
from modelci.registry import Registry, open_registry
from modelci.testing.report import test_result
from modelci.ui import views
from modelci.ui.charts import Point, metric_chart
from modelci.ui.source import Source, ordered_environments

if TYPE_CHECKING:
    from modelci.ui.actions import Actions

HERE = Path(__file__).resolve().parent
MAX_LIMIT = 5000


class BadRequest(Exception):
    """A query parameter is wrong: a 400 page that names it."""


class NotFound(Exception):
    """No such model or version: a 404 page."""


def templates() -> jinja2.Environment:
    """The package's templates, autoescaped."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["num"] = _num
    environment.filters["short"] = lambda text, n=12: (text or "")[:n]
    environment.globals["test_result"] = lambda record: test_result(record.details)
    return environment


class Dashboard:
    """The pages over one registry; `actions` adds the promote and rollback forms."""

    def __init__(self, source: Source, actions: Actions | None = None):
        self.source = source
        self.registry: Registry = open_registry(source.registry_url, source.root)
        self.jinja = templates()
        self.actions = actions

    def environments(self) -> list[str]:
        named = {p.environment for p in self.registry.pointers()}
        return ordered_environments(self.source.environments, named)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session = self.actions.session(request) if self.actions else None
        page = self.jinja.get_template(name).render(
            request=request, actions=self.actions, session=session, **context
        )
        return HTMLResponse(page, status_code=status)

    # --- pages -----------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        environments = self.environments()
        rows = views.overview(self.registry, environments)
        return self.render(request, "overview.html", rows=rows, environments=environments)

    def model(self, request: Request) -> Response:
        model = request.path_params["model"]
        environments = self.environments()
        page = views.model_page(self.registry, model, environments)
        if page is None:
            raise NotFound(f"no model named {model!r} in the registry")
        marks: dict[str, list[str]] = {}
        for where in page["in_force"]:
            marks.setdefault(where.pointer.version, []).append(where.environment)
        charts = {
            metric: metric_chart(
                metric,
                [Point(r.version, r.metrics.get(metric)) for r in page["versions"]],
                marks,
            )
            for metric in page["metrics"]
        }
        return self.render(
            request, "model.html", environments=environments, charts=charts, marks=marks, **page
        )

    def version(self, request: Request) -> Response:
        version = request.path_params["version"]
        page = views.version_page(self.registry, version)
        if page is None:
            raise NotFound(f"no version named {version!r} in the registry")
        record = page["record"]
        return self.render(
            request,
            "version.html",
            hyperparameters=views.hyperparameters(self.registry, record),
            commit_message=self._commit_message(record.commit),
            log_tail=self._log_tail(record.details),
            environments=self.environments(),
            **page,
        )

    def compare(self, request: Request) -> Response:
        names = [request.query_params.get(k, "").strip() for k in ("a", "b")]
        if not all(names):
            raise BadRequest("compare needs two versions: ?a=VERSION&b=VERSION")
        records = []
        for name in names:
            record = self.registry.get_version(name)
            if record is None:
                raise NotFound(f"no version named {name!r} in the registry")
            records.append(record)
        old, new = records
        hp_old = views.hyperparameters(self.registry, old)
        hp_new = views.hyperparameters(self.registry, new)
        return self.render(
            request,
            "compare.html",
            old=old,
            new=new,
            deltas=views.metric_deltas(new, old),
            keys=sorted(set(hp_old) | set(hp_new)),
            hp_old=hp_old,
            hp_new=hp_new,
            results_old=views.results(old),
            results_new=views.results(new),
            lock_diff=self._lock_diff(old.lock_hash, new.lock_hash),
        )

    def history(self, request: Request) -> Response:
        query = request.query_params
        filters = {
            key: query.get(key, "").strip() or None
            for key in ("model", "environment", "kind", "actor")
        }
        limit = _integer(query.get("limit"), "limit", views.HISTORY_LIMIT)
        at = _moment(query.get("at", "").strip(), "at")
        environments = self.environments()
        served = views.served_at(self.registry, at, environments) if at else None
        return self.render(
            request,
            "history.html",
            events=views.history(self.registry, filters, limit),
            filters=filters,
            limit=limit,
            at=query.get("at", ""),
            served=served,
            models=self.registry.models(),
            environments=environments,
        )

    # --- what lies beside the registry ------------------------------------------------------

    def _commit_message(self, commit: str) -> str | None:
        """The commit's subject line, when the dashboard runs in a checkout that has it."""
        if self.source.workspace is None:
            return None
        from modelci import git

        try:
            return git.run(self.source.root, "log", "-1", "--format=%B", commit).decode().strip()
        except ModelciError:
            return None

    def _log_tail(self, details: dict[str, Any], lines: int = 40) -> str | None:
        """The last lines of the training log: from the store when the checkout names one,
        else from the job's folder when it is still on this machine."""
        text = None
        sha256, job = details.get("log_sha256"), details.get("job_dir")
        if self.source.workspace is not None and isinstance(sha256, str):
            try:
                text = self.source.workspace.store().get_bytes(sha256).decode(errors="replace")
            except ModelciError:
                text = None
        if text is None and isinstance(job, str):
            try:
                text = (Path(job) / "output" / "log.txt").read_text(errors="replace")
            except OSError:
                return None
        return "\n".join(text.splitlines()[-lines:]) if text is not None else None

    def _lock_diff(self, old: str | None, new: str | None) -> list[str] | None:
        """The unified diff of two locks, when both texts are at hand (a checkout's
        `.modelci/locks/`); None otherwise."""
        if old == new:
            return []
        texts = _locks(self.source.root) if self.source.workspace is not None else {}
        if old not in texts or new not in texts:
            return None
        return list(
            difflib.unified_diff(
                texts[old].splitlines(), texts[new].splitlines(), "old", "new", lineterm=""
            )
        )


def _locks(root: Path) -> dict[str | None, str]:
    """Every lock text kept in the checkout, by its sha256."""
    found: dict[str | None, str] = {}
    folder = root / ".modelci" / "locks"
    for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        data = path.read_bytes()
        found[hashlib.sha256(data).hexdigest()] = data.decode(errors="replace")
    return found


def _integer(value: str | None, name: str, default: int) -> int:
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name}: {value!r} is not a whole number") from None
    if not 1 <= number <= MAX_LIMIT:
        raise BadRequest(f"{name}: must be between 1 and {MAX_LIMIT}")
    return number


def _moment(value: str, name: str) -> datetime | None:
    """An ISO 8601 moment (UTC when it names no zone), or None when empty."""
    if not value:
        return None
    # a `+` of an offset typed into a URL arrives as a space
    value = re.sub(r" (\d\d:?\d\d)$", r"+\1", value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{name}: {value!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _num(value: object) -> str:
    """A metric for people: four significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def create_app(source: Source, actions: Actions | None = None) -> Starlette:
    """The dashboard's application over `source`; `actions` (an Actions) enables the forms."""
    dashboard = Dashboard(source, actions)

    def page(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def guarded(request: Request) -> Response:
            try:
                return handler(request)
            except BadRequest as error:
                return dashboard.render(request, "error.html", 400, message=str(error))
            except NotFound as error:
                return dashboard.render(request, "error.html", 404, message=str(error))
            except ModelciError as error:
                return dashboard.render(request, "error.html", 503, message=error.render())

        return guarded

    routes: list[Route | Mount] = [
        Route("/", page(dashboard.overview)),
        Route("/models/{model}", page(dashboard.model)),
        Route("/versions/{version}", page(dashboard.version)),
        Route("/compare", page(dashboard.compare)),
        Route("/history", page(dashboard.history)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if actions is not None:
        routes += actions.routes(dashboard)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            dashboard.registry.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = dashboard
    return app
