"""The report `modelci report` makes: what a pull request changes, ready to post as a PR comment
(Markdown), to keep as a CI artifact (HTML) or to read from a script (JSON).

For each model the commits from the base to HEAD touch: the version built from HEAD (if one
is), its test result and gates, and each metric against the version production serves, with
the change; links to the dashboard when its URL is given.
"""

from __future__ import annotations

import html
import os
from typing import Any
from urllib.parse import quote, urlencode

from modelci.testing.report import describe_failure, test_result
from modelci.train.outcome import version_name
from modelci.workspace import Workspace

MARKER = "<!-- modelci-report -->"  # the CI finds its earlier comment by it, to edit in place
URL_VARIABLE = "MODELCI_UI_URL"
GATE_KINDS = ("gate", "no_regression")


def pull_request_report(
    workspace: Workspace, base: str | None, dashboard_url: str | None = None
) -> dict[str, Any]:
    """The changed models of BASE..HEAD with their new versions against production's."""
    from modelci.changes import detect
    from modelci.pipeline import deployed_commits

    exists = workspace.registry_exists()
    changes = detect(
        workspace.root,
        base=base,
        deployed=(lambda _head: deployed_commits(workspace)) if base is None and exists else None,
    )
    url = (dashboard_url or os.environ.get(URL_VARIABLE) or "").rstrip("/") or None
    production = workspace.environments[-1]
    models = []
    if exists:
        with workspace.registry() as registry:
            for change in changes.changed:
                name = version_name(change.model, changes.head)
                record = registry.get_version(name)
                pointer = registry.get_pointer(change.model, production)
                serving = registry.get_version(pointer.version) if pointer else None
                models.append(_entry(change.model, name, record, serving, change.to_json(), url))
    else:
        models = [
            _entry(c.model, version_name(c.model, changes.head), None, None, c.to_json(), url)
            for c in changes.changed
        ]
    return {
        "base": changes.base,
        "head": changes.head,
        "production": production,
        "dashboard_url": url,
        "models": models,
        "deleted": changes.deleted,
    }


def _entry(
    model: str,
    name: str,
    record: Any,
    serving: Any,
    change: dict[str, Any],
    url: str | None,
) -> dict[str, Any]:
    tests = record.details.get("tests") if record else None
    checks = tests.get("checks", []) if isinstance(tests, dict) else []
    new = record.metrics if record else {}
    old = serving.metrics if serving else {}
    metrics = []
    for metric in sorted(set(new) | set(old)):
        a, b = old.get(metric), new.get(metric)
        delta = b - a if a is not None and b is not None else None
        metrics.append({"metric": metric, "production": a, "new": b, "delta": delta})
    links = None
    if url:
        links = {"model": f"{url}/models/{quote(model)}"}
        if record:
            links["version"] = f"{url}/versions/{quote(name)}"
        if record and serving:
            links["compare"] = f"{url}/compare?" + urlencode({"a": serving.version, "b": name})
    return {
        "model": model,
        "reasons": change["reasons"],
        "version": name if record else None,
        "status": record.status if record else "not built",
        "tests": test_result(record.details) if record else "not tested",
        "production_version": serving.version if serving else None,
        "metrics": metrics,
        "gates": [
            {k: c.get(k) for k in ("name", "passed", "skipped", "expected", "actual", "message")}
            for c in checks
            if isinstance(c, dict) and c.get("kind") in GATE_KINDS
        ],
        "failed_checks": [
            describe_failure(c)
            for c in checks
            if isinstance(c, dict) and not c.get("passed") and not c.get("skipped")
        ],
        "links": links,
    }


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _gate(gate: dict[str, Any]) -> str:
    verdict = "skipped" if gate["skipped"] else ("passed" if gate["passed"] else "failed")
    return f"{gate['name']} {verdict}"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a GitHub-flavoured Markdown comment, opening with MARKER."""
    head = (report["head"] or "")[:12]
    base = (report["base"] or "each model's last deploy")[:40]
    lines = [MARKER, f"### modelci: {len(report['models'])} model(s) changed", ""]
    lines.append(
        f"`{base[:12] if report['base'] else base}..{head}`, compared with "
        f"**{report['production']}**"
    )
    lines.append("")
    if report["models"]:
        lines += [
            "| model | version | tests | gates | metric | production | new | change |",
            "| --- | --- | --- | --- | --- | --: | --: | --: |",
        ]
    for entry in report["models"]:
        links = entry["links"] or {}
        model = f"[{entry['model']}]({links['model']})" if "model" in links else entry["model"]
        version = entry["version"] or entry["status"]
        if "version" in links:
            version = f"[{version}]({links['version']})"
        tests = {"passed": "✅ passed", "failed": "❌ failed"}.get(entry["tests"], entry["tests"])
        gates = ", ".join(_gate(g) for g in entry["gates"]) or "-"
        rows = entry["metrics"] or [{"metric": "-", "production": None, "new": None, "delta": None}]
        for index, m in enumerate(rows):
            first = index == 0
            lines.append(
                "| "
                + " | ".join(
                    [
                        model if first else "",
                        version if first else "",
                        tests if first else "",
                        _cell(gates) if first else "",
                        m["metric"],
                        _num(m["production"]),
                        _num(m["new"]),
                        _num(m["delta"], signed=True),
                    ]
                )
                + " |"
            )
    for entry in report["models"]:
        for failure in entry["failed_checks"]:
            lines.append(f"- **{entry['model']}**: {_cell(failure)}")
        if "compare" in (entry["links"] or {}):
            lines.append(
                f"- {entry['model']}: [compare with production]({entry['links']['compare']})"
            )
    if report["deleted"]:
        lines.append(f"\nDeleted: {', '.join(report['deleted'])}")
    if not report["models"]:
        lines.append("No model changed.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_html(report: dict[str, Any]) -> str:
    """The report as a standalone HTML page (a CI artifact)."""
    e = html.escape
    rows = []
    for entry in report["models"]:
        links = entry["links"] or {}
        name = e(entry["model"])
        if "model" in links:
            name = f'<a href="{e(links["model"])}">{name}</a>'
        gates = ", ".join(_gate(g) for g in entry["gates"]) or "-"
        for index, m in enumerate(entry["metrics"] or [{}]):
            lead = (
                f"<td>{name}</td><td>{e(entry['version'] or entry['status'])}</td>"
                f'<td class="{e(entry["tests"])}">{e(entry["tests"])}</td><td>{e(gates)}</td>'
                if index == 0
                else "<td></td>" * 4
            )
            rows.append(
                f"<tr>{lead}<td>{e(m.get('metric', '-'))}</td>"
                f"<td>{_num(m.get('production'))}</td><td>{_num(m.get('new'))}</td>"
                f"<td>{_num(m.get('delta'), signed=True)}</td></tr>"
            )
    failures = "".join(
        f"<li><b>{e(x['model'])}</b>: {e(f)}</li>"
        for x in report["models"]
        for f in x["failed_checks"]
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>modelci report</title><style>body{font-family:sans-serif}"
        "td,th{border:1px solid #ccc;padding:4px 8px}table{border-collapse:collapse}"
        ".passed{color:#137a3a}.failed{color:#b42318}</style></head><body>"
        f"<h1>modelci: {len(report['models'])} model(s) changed</h1>"
        f"<p><code>{e((report['base'] or 'last deploy')[:12])}..{e(report['head'][:12])}</code>, "
        f"compared with <b>{e(report['production'])}</b></p>"
        "<table><tr><th>model</th><th>version</th><th>tests</th><th>gates</th><th>metric</th>"
        "<th>production</th><th>new</th><th>change</th></tr>"
        + "".join(rows)
        + f"</table><ul>{failures}</ul></body></html>\n"
    )
