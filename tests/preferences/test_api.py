import functools
import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from annotation.models import ImportBatch, Item
from core.errors import DomainError
from preferences import api as preferences_api
from preferences import selectors, services
from preferences.models import Judgement
from tests.concurrency import run_at_once
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import comparison_line, letter_of, make_comparisons, one_gold_and_one_plain, set_mode

pytestmark = pytest.mark.django_db


def _post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_it_sends_comparisons_created_through_the_api_through_the_import(
    personas: Personas, client_for: ClientFor
) -> None:
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/comparisons/"
    good = json.loads(comparison_line("Call +44 20 7946 0958 about it?", "Sure.", "No."))
    bad = {"prompt": "Only one?", "candidates": [{"content": "Lonely"}]}
    refused = _post(lead, path, {"comparisons": [good, bad]})
    assert refused.status_code == 422, "a refused import is a client error, not a creation"
    body = refused.json()
    assert body["status"] == "refused"
    assert ImportBatch.objects.get(pk=body["id"]).status == "refused"
    assert [e["line"] for e in body["errors"]] == [2], "element 2 is reported by its number"
    assert not Item.objects.filter(project=personas.project).exists(), "nothing half-imported"
    created = _post(lead, path, {"comparisons": [good, {**good, "prompt": "Other?", "gold": 1}]})
    assert created.json()["imported_count"] == 2
    listed = lead.get(path, {"gold": "true"}).json()["results"]
    assert len(listed) == 1
    assert listed[0]["gold"] == 0, "stored as a 0-based candidate id"
    assert listed[0]["candidates"][0]["provenance"]["model"] == "m-alpha", "data leads see provenance"
    everything = lead.get(path).json()["results"]
    assert "[PHONE_1]" in everything[0]["messages"][0]["content"], "scrubbed like any import"
    assert ImportBatch.objects.filter(project=personas.project).count() == 2


def test_it_hands_out_and_takes_judgements_through_the_api(personas: Personas, client_for: ClientFor) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    api = client_for(personas.annotator)
    base = f"/api/v1/projects/{personas.project.pk}"
    shown = api.post(f"{base}/comparisons/next/").json()
    assert shown["id"] == item.pk
    assert [c["letter"] for c in shown["candidates"]] == ["A", "B"]
    assert "m-alpha" not in json.dumps(shown), "provenance never reaches an annotator"
    assert "provenance" not in json.dumps(shown)
    winner = letter_of(personas.annotator, item, 1)
    body = {"choice": winner, "strength": 3, "rationale": "Cites the rule.", "idempotency_key": "api-1"}
    first = _post(api, f"{base}/comparisons/{item.pk}/judgements/", body)
    again = _post(api, f"{base}/comparisons/{item.pk}/judgements/", body)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["result"] == {"winner": 1, "strength": 3}
    assert Judgement.objects.count() == 1
    assert api.post(f"{base}/comparisons/next/").status_code == 204
    other = _post(api, f"{base}/comparisons/{item.pk}/judgements/", {**body, "idempotency_key": "api-2"})
    assert other.status_code == 409, "a second judgement of the same comparison conflicts with the first"
    assert "already judged" in json.dumps(other.json())


def test_it_stores_the_judgement_and_hands_out_the_next_on_submit_and_next(
    personas: Personas, client_for: ClientFor
) -> None:
    first_item, second_item = make_comparisons(personas.project, personas.data_lead, 2)
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    api = client_for(personas.annotator)
    base = f"/api/v1/projects/{personas.project.pk}/comparisons"
    shown = api.post(f"{base}/next/").json()
    assert shown["id"] == first_item.pk
    body = {"choice": letter_of(personas.annotator, first_item, 0), "strength": 2, "idempotency_key": "and-next-1"}
    answer = _post(api, f"{base}/{first_item.pk}/judgements/and-next/", body)
    assert answer.status_code == 201
    judgement = Judgement.objects.get()
    assert answer.json()["judgement"] == preferences_api.judgement_receipt(judgement), "as the submit answers"
    assert judgement.result == {"winner": 0, "strength": 2}
    upcoming = answer.json()["next"]
    assert upcoming["id"] == second_item.pk
    assert [c["letter"] for c in upcoming["candidates"]] == ["A", "B"]
    assert "m-alpha" not in json.dumps(upcoming), "provenance never reaches an annotator"
    assert upcoming == api.post(f"{base}/next/").json(), "leased to the annotator, as next would hand it out"

    again = _post(api, f"{base}/{first_item.pk}/judgements/and-next/", body)
    assert again.status_code == 201, "a resend answers with what was stored"
    assert again.json()["judgement"]["id"] == judgement.pk
    assert again.json()["next"]["id"] == second_item.pk, "and the comparison the user holds now"
    assert Judgement.objects.count() == 1

    changed = _post(api, f"{base}/{first_item.pk}/judgements/and-next/", {**body, "strength": 3})
    assert changed.status_code == 409, "the same key with another choice is a conflict, as on the submit endpoint"
    last = {"choice": "tie", "idempotency_key": "and-next-2"}
    done = _post(api, f"{base}/{second_item.pk}/judgements/and-next/", last)
    assert done.status_code == 201
    assert done.json()["next"] is None, "nothing left for this annotator"
    refused = _post(api, f"{base}/{second_item.pk}/judgements/and-next/", {"choice": "C", "idempotency_key": "x"})
    assert refused.status_code == 400


def test_it_refuses_a_malformed_judgement_with_a_reason(personas: Personas, client_for: ClientFor) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    api = client_for(personas.annotator)
    base = f"/api/v1/projects/{personas.project.pk}"
    api.post(f"{base}/comparisons/next/")
    response = _post(api, f"{base}/comparisons/{item.pk}/judgements/", {"choice": "C", "idempotency_key": "x"})
    assert response.status_code == 400
    response = _post(api, f"{base}/comparisons/{item.pk}/judgements/", {"idempotency_key": "x"})
    assert response.status_code == 400
    assert "Choose A, B, tie or both bad" in json.dumps(response.json())
    assert not Judgement.objects.exists()


def test_it_filters_the_judgement_list_and_marks_excluded_annotators(personas: Personas, client_for: ClientFor) -> None:
    items = make_comparisons(personas.project, personas.data_lead, 2)
    for n, user in enumerate([personas.annotator, personas.reviewer]):
        item = services.comparison_next(user=user, project=personas.project)
        assert item is not None
        services.judgement_submit(
            user=user, item=item, shown={"choice": "A"}, rationale="", time_spent_ms=1, idempotency_key=f"l{n}"
        )
    quality = selectors.annotator_quality(personas.project).get(annotator=personas.annotator)
    services.annotator_set_excluded(actor=personas.data_lead, quality=quality, excluded=True)
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/judgements/"
    rows = lead.get(path).json()["results"]
    assert {(r["annotator"], r["annotator_excluded"]) for r in rows} == {("annotator", True), ("reviewer", False)}
    documented = preferences_api.JudgementOut(
        Judgement.objects.order_by("id"), many=True, context={"excluded": {personas.annotator.pk}}
    ).data
    assert rows == json.loads(json.dumps(documented)), "the list is what the schema's serializer says"
    assert [r["annotator"] for r in lead.get(path, {"releasable": "true"}).json()["results"]] == ["reviewer"]
    assert [r["annotator"] for r in lead.get(path, {"annotator": "reviewer"}).json()["results"]] == ["reviewer"]
    for item in items:
        expected = [r["id"] for r in rows if r["item_id"] == item.pk]
        assert [r["id"] for r in lead.get(path, {"item": item.pk}).json()["results"]] == expected
    assert list(selectors.releasable_judgements(personas.project).values_list("annotator__username", flat=True)) == [
        "reviewer"
    ]


def test_it_serves_the_latest_snapshot_from_the_agreement_endpoint(personas: Personas, client_for: ClientFor) -> None:
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/agreement/"
    assert lead.get(path).json() == {
        "computed_at": None,
        "judgements": 0,
        "pending": False,
        "figures": {},
        "reward_models": [],
    }
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    services.comparison_next(user=personas.annotator, project=personas.project)
    services.judgement_submit(
        user=personas.annotator, item=item, shown={"choice": "tie"}, rationale="", time_spent_ms=1, idempotency_key="a"
    )
    services.agreement_recompute(project=personas.project)
    body = lead.get(path).json()
    assert body["judgements"] == 1
    assert "alpha_choice_nominal" in body["figures"]


def test_it_flags_a_judgement_far_faster_than_the_median(personas: Personas) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", fast_fraction=0.25)
    items = make_comparisons(personas.project, personas.data_lead, 12)
    for n, item in enumerate(items):
        assert services.comparison_next(user=personas.annotator, project=personas.project) == item
        took = 500 if n == 11 else 8000
        judgement = services.judgement_submit(
            user=personas.annotator, item=item, shown={"choice": "B"}, rationale="", time_spent_ms=took,
            idempotency_key=f"f{n}",
        )  # fmt: skip
        assert judgement.too_fast == (n == 11), n
    assert selectors.annotator_quality(personas.project).get().fast_judgements == 1


def test_it_serves_gold_items_at_the_rate_looking_like_any_other(personas: Personas, client_for: ClientFor) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.5)
    from tests.preferences.helpers import import_comparisons

    import_comparisons(
        personas.project, personas.data_lead, comparison_line("Which is right?", "Right", "Wrong", gold=1),
        *[comparison_line(f"Plain {n}?", f"x{n}", f"y{n}") for n in range(3)],
    )  # fmt: skip
    gold = Item.objects.get(project=personas.project, gold__isnull=False)
    served = set()
    for _ in range(40):
        item = services.comparison_next(user=personas.annotator, project=personas.project)
        assert item is not None
        served.add(item.pk)
    assert gold.pk in served, "at a 50 % rate, 40 requests serve the gold item"
    body = client_for(personas.annotator).get(f"/projects/{personas.project.pk}/compare/{gold.pk}/").content.decode()
    assert "Right" in body
    assert "gold" not in body.lower(), "nothing on the page tells a gold item apart"
    winner = letter_of(personas.annotator, gold, 0)
    path = f"/api/v1/projects/{personas.project.pk}/comparisons/{gold.pk}/judgements/"
    answer = _post(client_for(personas.annotator), path, {"choice": winner, "idempotency_key": "gold-api"})
    assert answer.status_code == 201
    assert not {"is_gold", "gold_correct", "too_fast"} & set(answer.json()), "the answer does not say gold"
    assert answer.json() == preferences_api.judgement_receipt(Judgement.objects.get(item=gold))


def test_it_shows_a_gold_item_never_handed_out_like_any_comparison_not_yours(
    personas: Personas, client_for: ClientFor
) -> None:
    """The page, its autosave and the API answer a gold item the annotator was never handed exactly as a
    plain comparison that is not theirs, so trying ids finds no gold item."""
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    gold, plain = one_gold_and_one_plain(personas.project, personas.data_lead)
    client = client_for(personas.annotator)
    answers = []
    for item in (gold, plain):
        base = f"/projects/{personas.project.pk}/compare/{item.pk}"
        page = client.get(f"{base}/")
        draft = client.post(f"{base}/draft/", {"choice": "A", "rationale": "", "time_spent_ms": "10"})
        api = _post(
            client,
            f"/api/v1/projects/{personas.project.pk}/comparisons/{item.pk}/judgements/",
            {"choice": "A", "idempotency_key": f"probe-{item.pk}"},
        )
        answers.append((page.status_code, page.get("Location"), draft.content.decode(), api.status_code, api.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 302, "the page sends them to their next comparison"
    assert not Judgement.objects.exists()


def test_it_keeps_gold_items_out_of_the_shared_queue(personas: Personas) -> None:
    from annotation import services as annotation_services
    from annotation.models import Slot

    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    gold, _ = one_gold_and_one_plain(personas.project, personas.data_lead)
    assert not Slot.objects.filter(item=gold).exists(), "every annotator sees a gold item once: no k slots"
    plain = services.comparison_next(user=personas.annotator, project=personas.project)
    assert plain is not None
    assert plain.gold is None
    services.judgement_submit(
        user=personas.annotator, item=plain, shown={"choice": "A"}, rationale="", time_spent_ms=1, idempotency_key="p"
    )
    assert services.comparison_next(user=personas.annotator, project=personas.project) is None
    annotation_services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=3, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    assert not Slot.objects.filter(item=gold).exists(), "raising k adds no slots to gold items"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("same_key", [True, False])
def test_it_stores_one_judgement_for_two_tabs_racing(personas: Personas, on_postgres: None, same_key: bool) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    services.comparison_next(user=personas.annotator, project=personas.project)
    outcomes: list[object] = []

    def tab(n: int) -> None:
        try:
            judgement = services.judgement_submit(
                user=personas.annotator, item=item, shown={"choice": "A"}, rationale="", time_spent_ms=1000,
                idempotency_key="tab" if same_key else f"tab{n}",
            )  # fmt: skip
            outcomes.append(judgement.pk)
        except DomainError as exc:
            outcomes.append(exc.message)

    assert run_at_once([functools.partial(tab, n) for n in range(2)], together=True) == []
    stored = Judgement.objects.get(item=item)
    if same_key:
        assert outcomes == [stored.pk, stored.pk], "both tabs get the one stored judgement"
    else:
        refused = "You already judged this comparison (in another tab or window)."
        assert sorted(map(str, outcomes)) == sorted([str(stored.pk), refused])


def _statements(queries: Any) -> list[str]:
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith(control)]


def test_it_keeps_next_and_submit_to_their_query_budget(personas: Personas) -> None:
    """Token, project, permissions and settings are read once per request; the judgement's writes and its
    audit append follow. A budget, so that a query creeping back into the hot path fails here."""
    from django.core.cache import cache
    from django.test.utils import CaptureQueriesContext

    from accounts.services import api_token_create

    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    make_comparisons(personas.project, personas.data_lead, 3)
    cache.set(f"judgement-median:{personas.project.pk}", (60_000,))  # as in a project with a history
    _, raw = api_token_create(user=personas.annotator, name="budget", days=1)
    api = Client(HTTP_AUTHORIZATION=f"Token {raw}")
    base = f"/api/v1/projects/{personas.project.pk}/comparisons"
    for n in range(3):  # the first: the token's first use is stamped, the annotator's quality row created
        with CaptureQueriesContext(connection) as next_queries:
            shown = api.post(f"{base}/next/").json()
        body = {"choice": "A", "strength": 1, "idempotency_key": f"budget-{n}", "time_spent_ms": 30_000}
        with CaptureQueriesContext(connection) as submit_queries:
            assert _post(api, f"{base}/{shown['id']}/judgements/", body).status_code == 201
        if n == 0:
            continue
        if connection.vendor == "postgresql":
            # next: token; project with settings and permissions; own slot or claim with its item and its audit
            # event. submit: token; project with settings, permissions, the item, its results and the quality
            # row; the judgement with its slot's end, draft and audit event (enclave_judgement_record)
            next_budget, submit_budget = 3, 3
        else:
            # token, project with settings, permissions, own slot, expired lease, free slot, lease, audit (3)
            next_budget, submit_budget = 10, 12
        assert len(_statements(next_queries)) <= next_budget, "\n".join(s[:90] for s in _statements(next_queries))
        # elsewhere: token, project with settings, permissions, item, slot lock, insert, draft, slot, quality,
        # judgements of the item, audit (3)
        assert len(_statements(submit_queries)) <= submit_budget, "\n".join(s[:90] for s in _statements(submit_queries))


def test_it_validates_judgement_input_alone_in_each_thread() -> None:
    """JudgementIn lends each thread one set of fields: threads validating at once, and one thread going from
    a bad judgement to a good one, each get their own outcome."""
    good = {"choice": "B", "strength": 2, "idempotency_key": "k-good", "time_spent_ms": 1200}
    bad = {"choice": "Z", "idempotency_key": "", "time_spent_ms": -1}
    failures: list[str] = []

    def validate(offset: int) -> None:
        for n in range(300):
            data = good if (n + offset) % 2 else bad
            serializer = preferences_api.JudgementIn(data=data)
            if serializer.is_valid() != (data is good):
                failures.append(f"{offset}/{n}: {serializer.errors}")
            elif data is good and serializer.validated_data != {**good, "rationale": ""}:
                failures.append(f"{offset}/{n}: {serializer.validated_data}")
            elif data is bad and set(serializer.errors) != {"choice", "idempotency_key", "time_spent_ms"}:
                failures.append(f"{offset}/{n}: {serializer.errors}")

    threads = [threading.Thread(target=validate, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    fields = preferences_api.JudgementIn(data=good).fields
    assert list(fields) == [
        "choice", "strength", "ranking", "criteria", "overall", "rationale", "time_spent_ms", "idempotency_key",
    ]  # fmt: skip


ROUND_TRIP_CEILING = 6


@pytest.mark.django_db(transaction=True)
def test_it_holds_submit_and_next_to_six_round_trips(personas: Personas, on_postgres: None) -> None:
    """One submit-and-next on PostgreSQL, counted on the wire (``tests/roundtrips.py``): every message the
    server answers, the connection's health check, BEGIN and COMMIT included. The first request of the
    annotator (the token's first use stamped, the quality row created) is left out, as in a session."""
    from django.core.cache import cache

    from accounts.services import api_token_create
    from tests.roundtrips import through_proxy, wsgi_post

    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    make_comparisons(personas.project, personas.data_lead, 5)
    cache.set(f"judgement-median:{personas.project.pk}", (60_000,))  # as in a project with a history
    _, raw = api_token_create(user=personas.annotator, name="round trips", days=1)
    base = f"/api/v1/projects/{personas.project.pk}/comparisons"
    counts = []
    with through_proxy() as proxy:
        status, shown = wsgi_post(f"{base}/next/", None, token=raw)
        assert status == 200
        for n in range(4):
            body = {"choice": "A", "strength": 1, "idempotency_key": f"trip-{n}", "time_spent_ms": 30_000}
            proxy.reset()
            status, answer = wsgi_post(f"{base}/{shown['id']}/judgements/and-next/", body, token=raw)
            counts.append(proxy.round_trips)
            assert status == 201, answer
            assert answer["judgement"]["item_id"] == shown["id"]
            shown = answer["next"]
    assert Judgement.objects.filter(annotator=personas.annotator).count() == 4
    assert max(counts[1:]) <= ROUND_TRIP_CEILING, f"round trips per submit-and-next: {counts}"
