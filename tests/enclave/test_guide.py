"""The user guide (docs/guide/) and its pictures: every picture a page names is taken by a browser test
(``guide="name"`` in a ``screenshot`` call or a ``Visit``), so the pictures change when the pages do, and
every link resolves."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide"
IMAGE = re.compile(r"!\[[^\]]+\]\(img/([a-z0-9-]+)\.png\)")
LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)#]+\.md)\)")
TAKEN = re.compile(r"""guide(?:_narrow)?=["']([a-z0-9-]+)["']""")


def _pictures_named() -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for page in sorted(GUIDE.glob("*.md")):
        for name in IMAGE.findall(page.read_text()):
            named.setdefault(name, []).append(page.name)
    return named


def _pictures_taken() -> set[str]:
    return {name for test in (ROOT / "tests" / "browser").glob("test_*.py") for name in TAKEN.findall(test.read_text())}


def test_it_has_a_page_for_each_persona_linked_from_the_index() -> None:
    index = (GUIDE / "README.md").read_text()
    for page in ["expert.md", "reviewer.md", "data-lead.md", "admin.md"]:
        assert (GUIDE / page).exists(), page
        assert f"({page})" in index, page


def test_it_names_only_pictures_that_a_browser_test_takes() -> None:
    named = _pictures_named()
    assert len(named) >= 12, named
    missing = sorted(set(named) - _pictures_taken())
    assert missing == [], f"no browser test takes these guide pictures: {missing}"


def test_it_takes_no_picture_that_no_page_shows() -> None:
    unused = sorted(_pictures_taken() - set(_pictures_named()))
    assert unused == [], f"guide pictures taken but shown on no guide page: {unused}"


def test_it_links_only_to_pages_that_exist() -> None:
    for page in GUIDE.glob("*.md"):
        for target in LINK.findall(page.read_text()):
            assert (page.parent / target).resolve().exists(), f"{page.name} links to {target}"
