"""API lists refuse what they cannot honour: an unknown parameter, or a filter value they cannot read, answers
400 naming the parameter (it was ignored, and the list answered everything). Valid filters keep their meaning,
and the schema documents them."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Item
from preferences.models import Judgement
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import comparison_line, import_comparisons

pytestmark = pytest.mark.django_db

LISTS = [
    "/api/v1/projects/",
    "/api/v1/projects/{p}/members/",
    "/api/v1/projects/{p}/audit-events/",
    "/api/v1/audit-events/",
    "/api/v1/tokens/",
    "/api/v1/projects/{p}/imports/",
    "/api/v1/projects/{p}/items/",
    "/api/v1/projects/{p}/annotations/",
    "/api/v1/projects/{p}/comparisons/",
    "/api/v1/projects/{p}/judgements/",
    "/api/v1/projects/{p}/releases/",
    "/api/v1/base-models/",
    "/api/v1/projects/{p}/training/jobs/",
    "/api/v1/projects/{p}/adapters/",
]


@pytest.fixture(params=LISTS)
def every_list(request: pytest.FixtureRequest, personas: Personas, client_for: ClientFor) -> tuple[Client, str]:
    """Each list of the API, as staff: the client, and the list's URL in project A."""
    return client_for(personas.staff), request.param.format(p=personas.project.pk)


def test_it_refuses_an_unknown_parameter_by_name_on_every_list(every_list: tuple[Client, str]) -> None:
    staff, url = every_list
    assert staff.get(url, {"limit": "5", "offset": "0"}).status_code == 200, "paging is always taken"
    answer = staff.get(url, {"no_such_filter": "1", "limit": "5"})
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/json"
    body = answer.json()
    assert list(body) == ["no_such_filter"]
    assert "Unknown parameter" in body["no_such_filter"][0]
    assert "limit" in body["no_such_filter"][0], "says what the list takes"


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/api/v1/projects/{p}/items/", {"state": "bogus"}, "state"),
        ("/api/v1/projects/{p}/items/", {"created_after": "yesterday"}, "created_after"),
        ("/api/v1/projects/{p}/items/", {"batch": "abc"}, "batch"),
        ("/api/v1/projects/{p}/items/", {"batch": "99999999999999999999"}, "batch"),
        ("/api/v1/projects/{p}/items/", {"edge_case": "maybe"}, "edge_case"),
        ("/api/v1/projects/{p}/annotations/", {"state": "bogus"}, "state"),
        ("/api/v1/projects/{p}/annotations/", {"item": "²"}, "item"),
        ("/api/v1/projects/{p}/comparisons/", {"gold": "yes please"}, "gold"),
        ("/api/v1/projects/{p}/comparisons/", {"state": "bogus"}, "state"),
        ("/api/v1/projects/{p}/judgements/", {"releasable": "perhaps"}, "releasable"),
        ("/api/v1/projects/{p}/judgements/", {"created_before": "tomorrow"}, "created_before"),
        ("/api/v1/projects/{p}/imports/", {"status": "bogus"}, "status"),
        ("/api/v1/projects/{p}/audit-events/", {"since": "yesterday"}, "since"),
        # Empty, where the type has no empty value (it read as no filter and answered everything).
        ("/api/v1/projects/{p}/items/", {"state": ""}, "state"),
        ("/api/v1/projects/{p}/items/", {"edge_case": ""}, "edge_case"),
        ("/api/v1/projects/{p}/items/", {"batch": ""}, "batch"),
        ("/api/v1/projects/{p}/annotations/", {"submitted_after": ""}, "submitted_after"),
    ],
)
def test_it_refuses_an_invalid_filter_value_by_name(
    path: str, params: dict[str, str], named: str, personas: Personas, client_for: ClientFor
) -> None:
    answer = client_for(personas.staff).get(path.format(p=personas.project.pk), params)
    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == [named]


def test_it_takes_an_empty_text_filter_as_no_filter(personas: Personas, client_for: ClientFor) -> None:
    """Free text may be empty (the schema allows it), and an empty one filters nothing, as django-filter reads it."""
    answer = client_for(personas.staff).get(f"/api/v1/projects/{personas.project.pk}/annotations/", {"annotator": ""})
    assert answer.status_code == 200, answer.content


def test_it_keeps_the_meaning_of_valid_filters(personas: Personas, client_for: ClientFor) -> None:
    lead = client_for(personas.data_lead)
    base = f"/api/v1/projects/{personas.project.pk}"
    batch = import_comparisons(
        personas.project,
        personas.data_lead,
        comparison_line("Plain?", "A.", "B."),
        comparison_line("Gold?", "A.", "B.", gold=1),
    )
    plain, gold = Item.objects.filter(batch=batch).order_by("id")
    Item.objects.filter(pk=gold.pk).update(created_at=timezone.now() - timedelta(days=3))

    def ids(path: str, **params: str) -> list[int]:
        answer = lead.get(f"{base}/{path}/", params)
        assert answer.status_code == 200, answer.content
        return [row["id"] for row in answer.json()["results"]]

    assert ids("comparisons") == [plain.pk, gold.pk]
    assert ids("comparisons", gold="true") == [gold.pk]
    assert ids("comparisons", gold="false") == [plain.pk]
    assert ids("comparisons", state="open") == [plain.pk, gold.pk]
    assert ids("comparisons", state="on_hold") == []
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids("comparisons", created_after=yesterday) == [plain.pk]
    assert ids("items", created_before=yesterday) == [gold.pk]
    assert ids("items", batch=str(batch.pk)) == [plain.pk, gold.pk]
    assert ids("items", batch=str(batch.pk + 1000)) == []
    assert ids("items", edge_case="true") == []
    assert ids("imports", status="done") == [batch.pk]
    assert ids("imports", status="refused") == []
    assert ids("judgements", releasable="true") == []
    assert not Judgement.objects.exists()


def test_it_documents_the_filters_in_the_schema(personas: Personas, client_for: ClientFor) -> None:
    schema = client_for(personas.annotator).get("/api/schema/", {"format": "json"}).json()

    def params(path: str) -> dict[str, dict[str, Any]]:
        operation = schema["paths"][path]["get"]
        return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}

    items = params("/api/v1/projects/{id}/items/")
    assert {"state", "batch", "edge_case", "created_after", "created_before", "limit", "offset"} <= set(items)
    assert items["edge_case"]["schema"]["type"] == "boolean"
    assert items["created_after"]["schema"]["format"] == "date-time"
    assert "bogus" not in json.dumps(items["state"]["schema"])
    assert "open" in items["state"]["schema"]["enum"]
    judgements = params("/api/v1/projects/{id}/judgements/")
    assert {"annotator", "item", "gold", "releasable", "created_after"} <= set(judgements)
    assert {"gold", "state", "created_after"} <= set(params("/api/v1/projects/{id}/comparisons/"))
    assert {"status", "fmt"} <= set(params("/api/v1/projects/{id}/imports/"))
    assert "400" in schema["paths"]["/api/v1/projects/{id}/releases/"]["get"]["responses"]


def test_it_refuses_paging_out_of_range_and_a_parameter_given_twice(every_list: tuple[Client, str]) -> None:
    staff, url = every_list
    for query, named in [
        ("limit=true", "limit"),
        ("limit=0", "limit"),
        ("offset=-474095", "offset"),
        ("limit=5&limit=6", "limit"),
        ("offset=0&offset=0", "offset"),
    ]:
        answer = staff.get(f"{url}?{query}")
        assert (answer.status_code, list(answer.json())) == (400, [named]), query
    assert staff.get(f"{url}?limit=1&offset=0").status_code == 200


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/api/v1/health/", "worker=null", "worker"),
        ("/api/v1/health/", "worker=true&worker=true", "worker"),
        ("/api/v1/health/", "verbose=1", "verbose"),
        ("/api/v1/projects/{p}/releases/diff/", "a=1", "b"),
        ("/api/v1/projects/{p}/releases/diff/", "a=x&b=1", "a"),
    ],
)
def test_it_reads_the_query_of_a_single_view_as_strictly_as_a_list(
    path: str, query: str, named: str, personas: Personas, client_for: ClientFor
) -> None:
    answer = client_for(personas.staff).get(f"{path.format(p=personas.project.pk)}?{query}")
    assert (answer.status_code, list(answer.json())) == (400, [named])
