"""The deployment API and pages: targets, the current pointer a serving stack pulls, requests and decisions,
each refusal a clear message that writes nothing, and outsiders answered 404."""

import json
from typing import Any

import pytest
from django.test import Client
from knox.models import AuthToken

from accounts.models import AuditEvent
from accounts.selectors import audit_chain_verify
from evaluation.models import DeploymentTarget, PromotionApproval, PromotionRequest, RequestState
from tests.conftest import ClientFor, Personas
from tests.evaluation import deploy_helpers as h

pytestmark = pytest.mark.django_db


def _post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def _base(p: Personas) -> str:
    return f"/api/v1/projects/{p.project.pk}/deployment-targets/"


def _setup(p: Personas) -> tuple[h.Cast, DeploymentTarget, Any, Any]:
    cast = h.cast(p)
    current = h.adapter(p, after={"eval_loss": 1.6}, sha="a")
    target = h.target(p, current)
    candidate = h.adapter(p, starter=cast.starter, before={"eval_loss": 2.0}, after={"eval_loss": 1.5}, sha="e")
    return cast, target, current, candidate


def test_it_creates_and_lists_targets(personas: Personas, client_for: ClientFor) -> None:
    admin = client_for(personas.project_admin)
    body = {"name": "retail-banking-assistant", "base_model": h.base_model(personas).pk, "min_win_rate_lower": 0.55}
    created = _post(admin, _base(personas), body)
    assert created.status_code == 201, created.content
    assert created.json()["current_adapter"] is None
    again = _post(admin, _base(personas), body)
    assert again.status_code == 409
    assert "already has a deployment target" in again.json()["detail"]
    listed = client_for(personas.approver).get(_base(personas)).json()
    assert [t["name"] for t in listed["results"]] == ["retail-banking-assistant"]
    assert client_for(personas.annotator).get(_base(personas)).status_code == 404


def test_it_promotes_through_the_api_and_answers_the_new_current_model(
    personas: Personas, client_for: ClientFor
) -> None:
    cast, target, current, candidate = _setup(personas)
    evaluation = h.evaluation(personas, candidate, current)
    url = f"{_base(personas)}{target.name}/"
    made = _post(client_for(cast.requester), url + "requests/", {"adapter": candidate.pk, "evaluation": evaluation.pk})
    assert made.status_code == 201, made.content
    request = made.json()
    assert request["gate"]["passed"]
    assert [c["passed"] for c in request["gate"]["checks"]] == [True, True, True, True]
    decide = f"{url}requests/{request['id']}/"
    first = _post(client_for(cast.approver), decide + "approve/", {"note": "ok"})
    assert first.json()["state"] == RequestState.PENDING
    assert [a["approver"] for a in first.json()["approvals"]] == ["approver"]
    still = client_for(personas.approver).get(url + "current/").json()
    assert still["adapter"] == current.pk  # one approval only: not promoted
    second = _post(client_for(cast.second_approver), decide + "approve/", {})
    assert second.json()["state"] == RequestState.DONE

    # A serving stack's token (an approver's) reads the pointer.
    _, token = AuthToken.objects.create(user=personas.approver)
    pointer = Client().get(url + "current/", HTTP_AUTHORIZATION=f"Token {token}")
    assert pointer.status_code == 200
    body = pointer.json()
    assert body["adapter"] == candidate.pk
    assert body["adapter_sha256"] == "e" * 64
    assert body["base_model"] == {"id": h.base_model(personas).pk, "name": "deploy-model", "hash": "b" * 64}
    assert body["kind"] == "promotion"
    assert body["request"] == request["id"]
    assert [f["download"] for f in body["files"]] == [
        f"/api/v1/projects/{personas.project.pk}/adapters/{candidate.pk}/files/0/",
        f"/api/v1/projects/{personas.project.pk}/adapters/{candidate.pk}/files/1/",
    ]
    history = client_for(personas.data_lead).get(url + "history/").json()["results"]
    assert [(d["kind"], d["adapter"]) for d in history] == [("promotion", candidate.pk), ("created", current.pk)]
    assert audit_chain_verify().ok


@pytest.mark.parametrize(
    ("who", "message", "code"),
    [
        ("requester", "The person who asked for it cannot approve it", 403),
        ("starter", "started the training job", 403),
    ],
)
def test_it_refuses_four_eyes_violations_through_the_api(
    personas: Personas, client_for: ClientFor, who: str, message: str, code: int
) -> None:
    cast, target, current, candidate = _setup(personas)
    request = _post(
        client_for(cast.requester), f"{_base(personas)}{target.name}/requests/",
        {"adapter": candidate.pk, "evaluation": h.evaluation(personas, candidate, current).pk},
    ).json()  # fmt: skip
    answer = _post(
        client_for(getattr(cast, who)), f"{_base(personas)}{target.name}/requests/{request['id']}/approve/", {}
    )
    assert answer.status_code == code
    assert message in answer.json()["detail"]
    assert not PromotionApproval.objects.exists()


def test_it_refuses_a_failing_gate_with_its_reason_and_writes_nothing(
    personas: Personas, client_for: ClientFor
) -> None:
    cast, target, current, candidate = _setup(personas)
    weak = h.evaluation(personas, candidate, current, low=0.4)
    requester = client_for(cast.requester)  # signing in is audited: count after it
    events = AuditEvent.objects.count()
    answer = _post(
        requester, f"{_base(personas)}{target.name}/requests/",
        {"adapter": candidate.pk, "evaluation": weak.pk},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "is below the target's threshold" in answer.json()["detail"]
    assert not PromotionRequest.objects.exists()
    assert AuditEvent.objects.count() == events


def test_it_answers_404_to_people_without_the_approve_permission(personas: Personas, client_for: ClientFor) -> None:
    cast, target, current, candidate = _setup(personas)
    request = _post(
        client_for(cast.requester), f"{_base(personas)}{target.name}/requests/",
        {"adapter": candidate.pk, "evaluation": h.evaluation(personas, candidate, current).pk},
    ).json()  # fmt: skip
    path = f"{_base(personas)}{target.name}/requests/{request['id']}/approve/"
    for user in (personas.data_lead, personas.annotator, personas.outsider):
        assert _post(client_for(user), path, {}).status_code == 404
    page = f"/projects/{personas.project.pk}/deployments/{target.name}/requests/{request['id']}/approve/"
    assert client_for(personas.data_lead).post(page).status_code == 404
    assert not PromotionApproval.objects.exists()


def test_it_rolls_back_through_the_pages_with_a_reason_and_one_approval(
    personas: Personas, client_for: ClientFor
) -> None:
    cast = h.cast(personas)
    current = h.adapter(personas)
    target = h.target(personas, current)
    page = f"/projects/{personas.project.pk}/deployments/{target.name}/"
    requester = client_for(cast.requester)
    refused = requester.post(page + "rollback/", {"adapter": "base", "reason": ""})
    assert refused.status_code == 400
    assert not PromotionRequest.objects.exists()
    assert requester.post(page + "rollback/", {"adapter": "base", "reason": "Incident 7."}).status_code == 302
    request = PromotionRequest.objects.get()
    shown = client_for(cast.approver).get(page)
    assert b"Incident 7." in shown.content
    assert b'id="approve-form"' in shown.content
    assert b'id="approve-form"' not in requester.get(page).content  # the requester cannot approve
    client_for(cast.approver).post(page + f"requests/{request.pk}/approve/", {"note": "Agreed."})
    target.refresh_from_db()
    assert target.current_adapter is None
    assert b"rollback" in client_for(personas.data_lead).get(page).content


def test_it_shows_the_gate_table_and_the_adapters_deployment_history(personas: Personas, client_for: ClientFor) -> None:
    cast, target, current, candidate = _setup(personas)
    page = f"/projects/{personas.project.pk}/deployments/{target.name}/"
    evaluation = h.evaluation(personas, candidate, current)
    made = client_for(cast.requester).post(page + "promote/", {"adapter": candidate.pk, "evaluation": evaluation.pk})
    assert made.status_code == 302
    shown = client_for(cast.approver).get(page).content.decode()
    assert "Human win rate against the current model" in shown
    assert "0.620" in shown
    assert "Approvals: 0 of 2" in shown
    assert f"/adapters/{candidate.pk}/" not in shown  # approvers do not read training: no link they cannot open
    request = PromotionRequest.objects.get()
    client_for(cast.approver).post(page + f"requests/{request.pk}/approve/", {"note": "Fine by me."})
    again = client_for(cast.approver).get(page).content.decode()  # approved once: no second Approve offered
    assert "Approvals: 1 of 2" in again
    assert 'id="approve-form"' not in again
    assert 'id="approved-already"' in again
    assert 'id="approve-form"' in client_for(cast.second_approver).get(page).content.decode()
    lineage = client_for(personas.project_admin).get(f"/projects/{personas.project.pk}/adapters/{current.pk}/")
    assert f"/projects/{personas.project.pk}/adapters/{current.pk}/deployments/" in lineage.content.decode()
    fragment = client_for(personas.data_lead).get(
        f"/projects/{personas.project.pk}/adapters/{candidate.pk}/deployments/"
    )
    assert fragment.status_code == 200
    assert evaluation.name in fragment.content.decode()
    assert "Promotion #" in fragment.content.decode()
    tabs = client_for(personas.approver).get(f"/projects/{personas.project.pk}/deployments/").content.decode()
    assert "Deployments" in tabs
    assert target.name in tabs


def test_it_lists_targets_in_constant_queries(
    personas: Personas, client_for: ClientFor, django_assert_max_num_queries: Any
) -> None:
    for n in range(6):
        h.target(personas, h.adapter(personas, sha="abcdef"[n]), name=f"target-{n}")
    client = client_for(personas.approver)
    with django_assert_max_num_queries(12):
        listed = client.get(_base(personas)).json()
    assert listed["count"] == 6
    assert {t["current_adapter_sha256"][0] for t in listed["results"]} == set("abcdef")
    with django_assert_max_num_queries(14):
        page = client.get(f"/projects/{personas.project.pk}/deployments/").content.decode()
    assert page.count('href="/projects/') >= 6
