"""What is left in the queue and why: the project page counts the open slots someone can take apart from those
no member can, and the SFT "nothing left" section says it was the last item and where the rest went."""

import pytest

from accounts.models import Role
from annotation import queue_left, services
from annotation.models import Slot, SlotState
from tests.annotation.helpers import GOOD_SCORES, give_rubric, import_items
from tests.conftest import ClientFor, Personas
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _set_k(personas: Personas, k: int) -> None:
    services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=k, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip


def _label(personas: Personas, user, key: str) -> None:  # type: ignore[no-untyped-def]
    slot = services.item_next(user=user, project=personas.project)
    assert slot is not None
    services.annotation_submit(
        user=user, item=slot.item, response="An ideal answer.", scores=GOOD_SCORES, flags=[], note="",
        time_spent_ms=1000, submit_key=key,
    )  # fmt: skip


def test_it_counts_open_slots_that_no_annotator_can_take_apart(
    personas: Personas, client_for: ClientFor, on_postgres: None
) -> None:
    give_rubric(personas.project, personas.data_lead)
    _set_k(personas, 4)  # the project has three members who annotate: annotator, reviewer, project admin
    first, _second = import_items(personas.project, personas.data_lead, 2)
    assert queue_left.open_slots(personas.project) == queue_left.OpenSlots(
        takeable=6, stuck=2, annotators=3, per_item=4
    )
    _label(personas, personas.annotator, "a")
    _label(personas, personas.reviewer, "r")
    held = services.item_next(user=personas.project_admin, project=personas.project)
    assert held is not None
    counts = queue_left.open_slots(personas.project)
    # first: annotator, reviewer and project admin hold a slot each; its fourth slot is free but nobody is left.
    # second: four free slots and three possible takers.
    assert held.item_id == first.pk
    assert (counts.takeable, counts.stuck) == (0 + 3, 1 + 1)
    page = client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/").content.decode()
    assert 'id="open-slots"><span class="num">3</span>' in page
    assert 'id="stuck-slots"><span class="num">2</span><span class="label">need another annotator' in page
    assert "each item asks for 4 different people, 3 members of this project annotate" in page
    MembershipFactory.create(project=personas.project, role=Role.ANNOTATOR)
    assert queue_left.open_slots(personas.project) == queue_left.OpenSlots(
        takeable=1 + 4, stuck=0, annotators=4, per_item=4
    )
    assert (
        'id="stuck-slots"'
        not in client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/").content.decode()
    )
    assert Slot.objects.filter(state=SlotState.DONE).count() == 2


def test_it_says_submitted_and_nothing_left_and_why_in_one_message(personas: Personas, client_for: ClientFor) -> None:
    give_rubric(personas.project, personas.data_lead)
    (item,) = import_items(personas.project, personas.data_lead, 1)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/annotate/")
    answer = client.post(
        f"/projects/{personas.project.pk}/annotate/{item.pk}/submit/",
        {"response": "An ideal answer.", **{f"score_{k}": v for k, v in GOOD_SCORES.items()}, "submit_key": "last"},
        HTTP_HX_REQUEST="true",
    )
    body = answer.content.decode()
    assert "Submitted. That was the last item in your queue for now" in body, body[:2000]
    assert "Here is the next one" not in body
    assert "You labelled <b>1</b> item." in body


def test_it_says_when_a_skipped_item_comes_straight_back(personas: Personas, client_for: ClientFor) -> None:
    give_rubric(personas.project, personas.data_lead)
    first, second = import_items(personas.project, personas.data_lead, 2)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/annotate/")
    skip = f"/projects/{personas.project.pk}/annotate/{first.pk}/skip/"
    body = client.post(skip, HTTP_HX_REQUEST="true").content.decode()
    assert "Skipped. It comes back to you once nothing else is left." in body
    assert f"/annotate/{second.pk}/submit/" in body
    _submit = f"/projects/{personas.project.pk}/annotate/{second.pk}/submit/"
    work = {"response": "An ideal answer.", **{f"score_{k}": v for k, v in GOOD_SCORES.items()}, "submit_key": "s"}
    body = client.post(_submit, work, HTTP_HX_REQUEST="true").content.decode()
    assert f"/annotate/{first.pk}/submit/" in body, "with nothing else left, the skipped item comes back"
    again = client.post(skip, HTTP_HX_REQUEST="true").content.decode()
    assert "Skipped, but nothing else is left for you, so here it is again." in again
