"""The charts drawn in a real Chromium, on the project overview and the quality page, wide and at 390 px."""

import pytest

from tests.browser.conftest import ARTIFACTS, screenshot
from tests.browser.test_labeling import _login
from tests.conftest import make_personas
from tests.preferences.test_charts import _judged_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Each chart's drawing: its canvas's size, and whether the chart fits the width of its figure.
MEASURE = """() => [...document.querySelectorAll('[data-chart]')].map(box => {
  const canvas = box.querySelector('.uplot canvas');
  const figure = box.closest('figure').getBoundingClientRect();
  const plot = box.querySelector('.uplot');
  return {
    chart: box.dataset.chart,
    width: canvas ? canvas.getBoundingClientRect().width : 0,
    height: canvas ? canvas.getBoundingClientRect().height : 0,
    fits: plot ? plot.getBoundingClientRect().right <= figure.right + 1 : false,
  };
})"""


def _charts_drawn(page, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(f"document.querySelectorAll('[data-chart][data-drawn]').length === {len(expected)}")
    page.wait_for_timeout(150)  # a resize is redrawn on the next frame
    drawn = page.evaluate(MEASURE)
    assert {d["chart"] for d in drawn} == expected
    for chart in drawn:
        assert chart["width"] > 200, chart
        assert chart["height"] > 100, chart
        assert chart["fits"], f"{chart['chart']} is wider than its figure"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"


def test_it_draws_the_overview_and_quality_charts_wide_and_narrow(page) -> None:  # type: ignore[no-untyped-def]
    personas = make_personas()
    _judged_project(personas)
    project = personas.project
    _login(page, "reviewer")
    _show(page, f"/projects/{project.pk}/", "overview", {"per_day", "progress"}, guide="overview")
    _show(page, f"/projects/{project.pk}/quality/", "quality", {"agreement", "bias", "scatter"}, guide="quality")


def _show(page, path: str, name: str, charts: set[str], guide: str) -> None:  # type: ignore[no-untyped-def]
    """The page wide, then narrow: the charts drawn at both widths, screenshots of each."""
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(path)
    _charts_drawn(page, charts)
    screenshot(page, f"charts-{name}-1280", guide=guide)
    page.set_viewport_size({"width": 390, "height": 844})
    _charts_drawn(page, charts)
    screenshot(page, f"charts-{name}-390")
    page.locator(".chart-grid").screenshot(path=str(ARTIFACTS / f"charts-{name}-390-figures.png"))
