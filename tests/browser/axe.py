"""axe-core in the browser tests: the engine comes from the pinned dev dependency axe-playwright-python, which
ships axe.min.js (axe-core 4.12, MPL-2.0, its licence in the file's header); only its script is used, never
served by the app. It is evaluated in the page rather than added as a script tag: the pages' CSP allows only
their own script files, and an inline tag would be refused. A page passes when axe finds nothing serious or
critical on it."""

from functools import cache
from importlib.resources import files
from typing import Any

BLOCKING = ("serious", "critical")
# The rules whose outcome depends on the layout, not only on the markup: a second width needs only these,
# since the same HTML has passed every rule at the first.
LAYOUT_RULES = ("color-contrast", "link-in-text-block", "scrollable-region-focusable", "target-size", "meta-viewport")


@cache
def axe_script() -> str:
    return (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def axe_findings(page: Any, rules: tuple[str, ...] = ()) -> list[str]:  # a Playwright Page
    """Every serious or critical violation on the page as it is now (of ``rules`` only, when given), one
    readable line each: rule id, impact, the selectors of the elements and axe's own summary of what to fix."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_script())
    options: dict[str, Any] = {"resultTypes": ["violations"], "iframes": False, "preload": False}
    if rules:
        options["runOnly"] = {"type": "rule", "values": list(rules)}
    results = page.evaluate("options => axe.run(document, options)", options)
    findings = []
    for violation in results["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        targets = ", ".join(" ".join(map(str, node["target"])) for node in violation["nodes"][:6])
        more = len(violation["nodes"]) - 6
        findings.append(
            f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}"
            + (f" and {more} more" if more > 0 else "")
        )
    return findings
