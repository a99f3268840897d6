"""Ids from addresses and query strings: digits that are not ASCII, and numbers no bigint holds, find nothing
(404, or no filter) and never reach the database driver, which raises on them (a 500)."""

import pytest

from core.http import MAX_ID, parse_count, parse_id
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import make_comparisons

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"
SUPERSCRIPT_TWO = "%C2%B2"  # "²": str.isdigit() says yes, int() says no


def test_it_takes_only_ascii_digits_that_fit_a_bigint_in_parse_id() -> None:
    assert parse_id("42") == 42
    assert parse_id(42) == 42
    assert parse_id(str(MAX_ID)) == MAX_ID
    for bad in ["²", "٣", "", "0", "-1", "1.5", " 7", str(MAX_ID + 1), HUGE, None, True, 0, MAX_ID + 1]:
        assert parse_id(bad) is None, bad
    assert parse_count("120") == 120
    assert parse_count("²") == 0
    assert parse_count("1" * 19, -1) == -1


def test_it_answers_404_for_absurd_ids_in_addresses(personas: Personas, client_for: ClientFor) -> None:
    client = client_for(personas.project_admin)
    project = personas.project.pk
    for path in [
        f"/projects/{HUGE}/",
        f"/projects/{project}/members/{HUGE}/role/",
        f"/projects/{project}/training/{HUGE}/",
        f"/projects/{project}/releases/{HUGE}/",
        f"/api/v1/projects/{HUGE}/releases/",
        f"/api/v1/projects/{project}/releases/{HUGE}/",
    ]:
        assert client.get(path).status_code == 404, path


def test_it_filters_nothing_or_refuses_absurd_ids_in_query_strings(personas: Personas, client_for: ClientFor) -> None:
    make_comparisons(personas.project, personas.data_lead, 1)
    client = client_for(personas.data_lead)
    api = f"/api/v1/projects/{personas.project.pk}"
    for value in (HUGE, SUPERSCRIPT_TWO):
        for path, name in [
            (f"{api}/items/?batch={value}", "batch"),
            (f"{api}/annotations/?item={value}", "item"),
            (f"{api}/judgements/?item={value}", "item"),
        ]:
            refused = client.get(path)
            assert refused.status_code == 400, path
            assert list(refused.json()) == [name], "the list names the filter it cannot read"
        assert client.get(f"{api}/releases/diff/?a={value}&b=1").status_code == 400
        page = client.get(f"/projects/{personas.project.pk}/releases/diff/?a={value}&b=1")
        assert page.status_code == 400
        assert client.get(f"/projects/{personas.project.pk}/releases/new/?from={value}").status_code == 200


def test_it_caps_api_list_pages_and_answers_unknown_api_addresses_in_json(
    personas: Personas, client_for: ClientFor
) -> None:
    client = client_for(personas.data_lead)
    listed = client.get(f"/api/v1/projects/?limit={HUGE}&offset={HUGE}")
    assert listed.status_code == 200, "a limit no database holds is capped, an offset past the end is the end"
    assert listed.json()["results"] == []
    assert client.get(f"/api/v1/projects/?limit={HUGE}").json()["count"] >= 1
    missing = client.get("/api/v1/projects/abc/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found."}
    assert "<html" in client.get("/projects/abc/").content.decode(), "pages keep their 404 page"
