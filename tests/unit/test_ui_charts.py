"""The dashboard's server-made SVG charts: one point per version that has the metric, the
environments' versions marked, well-formed and escaped whatever the names hold."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from modelci.ui.charts import Point, metric_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_one_point_per_version_in_order_with_marks() -> None:
    points = [Point(f"m-{i:012d}", 0.5 + i / 10) for i in range(5)]
    root = _parse(metric_chart("accuracy", points, {"m-000000000004": ["staging"]}))
    circles = root.findall(f"{SVG}circle[@class='point']")
    assert [c.get("data-version") for c in circles] == [p.version for p in points]
    assert [float(c.get("data-value") or "nan") for c in circles] == [p.value for p in points]
    xs = [float(c.get("cx") or 0) for c in circles]
    ys = [float(c.get("cy") or 0) for c in circles]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # rising values go up
    marks = root.findall(f"{SVG}circle[@class='mark']")
    assert [m.get("data-environment") for m in marks] == ["staging"]
    assert (marks[0].get("cx"), marks[0].get("cy")) == (
        circles[-1].get("cx"),
        circles[-1].get("cy"),
    )
    polyline = root.find(f"{SVG}polyline")
    assert polyline is not None and len((polyline.get("points") or "").split()) == 5


def test_versions_without_the_metric_get_no_point() -> None:
    points = [Point("a", 1.0), Point("b", None), Point("c", 3.0)]
    root = _parse(metric_chart("loss", points, {}))
    circles = root.findall(f"{SVG}circle[@class='point']")
    assert [c.get("data-version") for c in circles] == ["a", "c"]


def test_a_single_point_and_equal_values_are_drawn_inside_the_chart() -> None:
    for points in ([Point("only", 0.9)], [Point("a", 2.0), Point("b", 2.0)]):
        root = _parse(metric_chart("f1", points, {}))
        for circle in root.findall(f"{SVG}circle[@class='point']"):
            cx, cy = float(circle.get("cx") or -1), float(circle.get("cy") or -1)
            assert 0 < cx < 640 and 0 < cy < 220


def test_names_are_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    svg = metric_chart(hostile, [Point(hostile, 1.0)], {hostile: [hostile]})
    assert "<script>" not in svg
    root = _parse(svg)
    assert root.get("data-metric") == hostile
    assert root.find(f"{SVG}circle[@class='point']").get("data-version") == hostile  # type: ignore[union-attr]
