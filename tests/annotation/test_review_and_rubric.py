import pytest

from accounts.models import AuditEvent
from annotation import services
from annotation.models import Annotation, AnnotationState, Item, ItemState, RubricVersion
from annotation.parsing import Message, content_hash
from core.errors import DomainError
from tests.annotation.helpers import CRITERIA, GOOD_SCORES, give_rubric, import_items
from tests.conftest import ClientFor, Personas

pytestmark = pytest.mark.django_db


def _annotated(personas: Personas, user=None, flags: list[str] | None = None) -> Annotation:  # type: ignore[no-untyped-def]
    user = user or personas.annotator
    give_rubric(personas.project, personas.data_lead)
    import_items(personas.project, personas.data_lead, 1)
    slot = services.item_next(user=user, project=personas.project)
    assert slot is not None
    return services.annotation_submit(
        user=user, item=slot.item, response="The ideal answer.", scores=GOOD_SCORES, flags=flags or [], note="n",
        time_spent_ms=5000, submit_key="key-1",
    )  # fmt: skip


def test_it_requires_scores_to_cover_required_criteria_and_fit_the_scale(personas: Personas) -> None:
    give_rubric(personas.project, personas.data_lead)
    import_items(personas.project, personas.data_lead, 1)
    slot = services.item_next(user=personas.annotator, project=personas.project)
    assert slot is not None
    for scores, message in [
        ({"correct": "pass"}, "Score “Helpful” before submitting."),
        ({"correct": "maybe", "helpful": "3"}, "“maybe” is not on the scale of “Correct”"),
        ({"correct": "pass", "helpful": "9"}, "“9” is not on the scale of “Helpful”"),
        ({"correct": "pass", "helpful": "3", "nonsense": "1"}, "“nonsense” is not a criterion"),
    ]:
        with pytest.raises(DomainError, match=message):
            services.annotation_submit(
                user=personas.annotator, item=slot.item, response="x", scores=scores, flags=[], note="",
                time_spent_ms=0, submit_key="k",
            )  # fmt: skip
    assert not Annotation.objects.exists()


def test_it_makes_a_new_version_when_editing_a_rubric_in_use(personas: Personas) -> None:
    annotation = _annotated(personas)
    v2 = services.rubric_save(
        actor=personas.data_lead, project=personas.project, guidelines="New", criteria=[*CRITERIA[:1]]
    )
    assert v2.version == 2
    annotation.refresh_from_db()
    assert annotation.rubric_version.version == 1
    assert len(annotation.rubric_version.criteria) == 3
    v2_again = services.rubric_save(
        actor=personas.data_lead, project=personas.project, guidelines="Newer", criteria=[*CRITERIA[:2]]
    )
    assert v2_again.pk == v2.pk, "an unused version is edited in place"
    assert RubricVersion.objects.filter(project=personas.project).count() == 2


def test_it_refuses_bad_criteria_with_the_reason(personas: Personas) -> None:
    with pytest.raises(DomainError, match="needs at least two categories"):
        services.rubric_save(
            actor=personas.data_lead, project=personas.project, guidelines="",
            criteria=[{"name": "Tone", "scale": "categories", "categories": ["one"]}],
        )  # fmt: skip
    with pytest.raises(DomainError, match="unknown scale"):
        services.rubric_save(
            actor=personas.data_lead, project=personas.project, guidelines="", criteria=[{"name": "X", "scale": "1-10"}]
        )


def test_it_lets_nobody_review_their_own_work(personas: Personas) -> None:
    annotation = _annotated(personas, user=personas.reviewer)
    with pytest.raises(DomainError, match="Nobody reviews their own work"):
        services.annotation_review(reviewer=personas.reviewer, annotation=annotation, decision="approve")


def test_it_keeps_every_version_through_send_back_revise_and_edit_and_approve(personas: Personas) -> None:
    annotation = _annotated(personas)
    with pytest.raises(DomainError, match="Say what to change"):
        services.annotation_review(reviewer=personas.reviewer, annotation=annotation, decision="reject")
    services.annotation_review(
        reviewer=personas.reviewer, annotation=annotation, decision="reject", comment="Mention the 3-day wait."
    )
    annotation.refresh_from_db()
    assert annotation.state == AnnotationState.REJECTED
    revised = services.annotation_submit(
        user=personas.annotator, item=annotation.item, response="Better answer, 3-day wait.", scores=GOOD_SCORES,
        flags=[], note="", time_spent_ms=7000, submit_key="key-2",
    )  # fmt: skip
    assert revised.pk == annotation.pk
    assert revised.revision == 2
    assert revised.history[0]["response"] == "The ideal answer."
    review = services.annotation_review(
        reviewer=personas.project_admin, annotation=revised, decision="edit_approve",
        edited_response="Best answer, 3-day wait.", edited_scores={"correct": "pass", "helpful": "5"},
    )  # fmt: skip
    revised.refresh_from_db()
    assert revised.state == AnnotationState.APPROVED
    assert revised.response == "Better answer, 3-day wait."
    assert review.edited_response == "Best answer, 3-day wait."
    assert review.edited_scores == {"correct": "pass", "helpful": "5"}
    actions = list(AuditEvent.objects.filter(action__startswith="review.").values_list("action", flat=True))
    assert sorted(actions) == ["review.edit_approve", "review.reject"]
    with pytest.raises(DomainError, match="not waiting for review"):
        services.annotation_review(reviewer=personas.reviewer, annotation=revised, decision="approve")


def test_it_holds_a_pii_flagged_item_until_a_data_lead_redacts_it(personas: Personas) -> None:
    annotation = _annotated(personas, flags=["pii_leak"])
    item = Item.objects.get(pk=annotation.item_id)
    assert item.state == ItemState.ON_HOLD
    Item.objects.filter(pk=item.pk).update(messages=[{"role": "user", "content": "I am Ms Hildegard Smith"}])
    item.refresh_from_db()
    services.item_release_hold(actor=personas.data_lead, item=item, redact="Hildegard Smith")
    item.refresh_from_db()
    assert item.state == ItemState.OPEN
    assert item.messages[0]["content"] == "I am Ms [REDACTED]"


def test_it_needs_an_edit_to_approve_my_edit_and_shows_a_reviewed_annotations_outcome(
    personas: Personas, client_for: ClientFor
) -> None:
    annotation = _annotated(personas)
    with pytest.raises(DomainError, match="Nothing was edited: use Approve"):
        services.annotation_review(
            reviewer=personas.reviewer, annotation=annotation, decision="edit_approve", comment="",
            edited_response="The ideal answer.", edited_scores=None,
        )  # fmt: skip
    reviewer = client_for(personas.reviewer)
    url = f"/projects/{personas.project.pk}/review/{annotation.pk}/"
    assert 'value="approve"' in reviewer.get(url).content.decode(), "waiting: the actions are there"

    services.annotation_review(
        reviewer=personas.reviewer, annotation=annotation, decision="edit_approve", comment="",
        edited_response="The ideal answer, tightened.", edited_scores=None,
    )  # fmt: skip
    page = reviewer.get(url).content.decode()
    assert "Edited and approved by reviewer" in page
    assert 'value="approve"' not in page, "nothing left to decide: no buttons"
    assert 'id="review-form" inert' in page


def test_it_confirms_a_decision_in_words_on_the_review_page(personas: Personas, client_for: ClientFor) -> None:
    annotation = _annotated(personas)
    reviewer = client_for(personas.reviewer)
    response = reviewer.post(
        f"/projects/{personas.project.pk}/review/{annotation.pk}/",
        {"decision": "reject", "comment": "Mention the 3-day wait."},
        follow=True,
    )
    page = response.content.decode()
    assert f"Annotation #{annotation.pk} by annotator sent back to them." in page
    assert "Send back:" not in page


def test_it_stores_the_hash_of_the_redacted_text_when_releasing_a_redacted_item(personas: Personas) -> None:
    annotation = _annotated(personas, flags=["pii_leak"])
    leaked = [{"role": "user", "content": "I am Ms Hildegard Smith"}]
    Item.objects.filter(pk=annotation.item_id).update(messages=leaked, content_hash="0" * 64)
    item = Item.objects.get(pk=annotation.item_id)
    services.item_release_hold(actor=personas.data_lead, item=item, redact="Hildegard Smith")
    item.refresh_from_db()
    redacted = [Message(role="user", content="I am Ms [REDACTED]")]
    assert item.content_hash == content_hash(redacted, item.response, [c["content"] for c in item.candidates])
