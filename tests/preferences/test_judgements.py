import functools

import pytest

from accounts.models import AuditEvent, Role
from annotation import services as annotation_services
from annotation.models import Item, Slot, SlotState
from core.errors import DomainError
from preferences import results, services
from preferences.models import Adjudication, AnnotatorQuality, Judgement
from preferences.permissions import get_comparison_for_submit
from tests.annotation.helpers import set_k
from tests.concurrency import run_at_once
from tests.conftest import ClientFor, Personas
from tests.factories import MembershipFactory, UserFactory
from tests.preferences.helpers import (
    comparison_line,
    import_comparisons,
    letter_of,
    make_comparisons,
    one_gold_and_one_plain,
    set_mode,
)

pytestmark = pytest.mark.django_db


def _take(user, project) -> Item:  # type: ignore[no-untyped-def]
    item = services.comparison_next(user=user, project=project)
    assert item is not None
    return item


def _judge(user, item: Item, shown: dict, key: str = "k", rationale: str = "", read: bool = False) -> Judgement:  # type: ignore[no-untyped-def]
    """``read``: as the API submits, with what the submit needs read with the project (on PostgreSQL a judgement
    that changes nothing else is then recorded in one statement)."""
    seen = None
    if read:
        item, seen = get_comparison_for_submit(user, item.project_id, item.pk)
    return services.judgement_submit(
        user=user, item=item, shown=shown, rationale=rationale, time_spent_ms=4000, idempotency_key=key, seen=seen
    )


def _quality_rows(project, *users) -> None:  # type: ignore[no-untyped-def]
    """Annotators who judged before in the project (their quality row exists): a plain judgement of theirs
    changes nothing else, the case a submit records in one statement."""
    for user in users:
        AnnotatorQuality.objects.get_or_create(project=project, annotator=user)


READ = pytest.mark.parametrize("read", [False, True], ids=["service", "read-with-project"])


def test_it_imports_candidates_with_provenance_scrubbed_and_gold_in_ids(personas: Personas) -> None:
    batch = import_comparisons(
        personas.project,
        personas.data_lead,
        comparison_line("Reply to anna@example.com", "Write to anna@example.com", "I cannot share that.", gold=2),
        comparison_line("Reply to anna@example.com", "I cannot share that.", "Write to anna@example.com"),
    )
    assert batch.imported_count == 1
    assert batch.duplicate_count == 1, "the same candidates in another order are the same comparison"
    item = Item.objects.get(batch=batch)
    assert item.kind == "comparison"
    assert item.messages == [{"role": "user", "content": "Reply to [EMAIL_1]"}]
    assert item.candidates[0]["content"] == "Write to [EMAIL_1]"
    assert item.candidates[0]["provenance"]["model"] == "m-alpha"
    assert item.candidates[1]["provenance"]["decoding"] == {"temperature": 0.7}
    assert item.gold == 1


@pytest.mark.parametrize("swapped", [False, True])
def test_it_maps_a_displayed_choice_back_to_the_right_candidate(personas: Personas, swapped: bool) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    # Find an annotator whose shuffle shows candidate 1 first (swapped) or candidate 0 first.
    for n in range(40):
        user = UserFactory.create(username=f"judge{n}")
        if results.display_order(user, item)[1] == ([1, 0] if swapped else [0, 1]):
            break
    else:
        pytest.fail("no annotator with that display order among 40")
    MembershipFactory.create(project=personas.project, user=user, role=Role.ANNOTATOR)
    assert _take(user, personas.project) == item
    judgement = _judge(user, item, {"choice": "A", "strength": "3"})
    assert judgement.result == {"winner": 1 if swapped else 0, "strength": 3}
    assert judgement.displayed_order == ([1, 0] if swapped else [0, 1])
    assert judgement.displayed_result == {"choice": "A", "strength": "3"}


def test_it_maps_an_n_way_ranking_with_a_tie_back(personas: Personas) -> None:
    set_mode(personas.project, personas.data_lead, "ranking")
    item, item2 = make_comparisons(personas.project, personas.data_lead, 2, candidates=3)
    assert _take(personas.annotator, personas.project) == item
    best, tied = letter_of(personas.annotator, item, 2), [letter_of(personas.annotator, item, c) for c in (0, 1)]
    judgement = _judge(personas.annotator, item, {"ranking": [[best], tied]})
    assert judgement.result == {"ranking": [[2], [0, 1]]}
    assert _take(personas.annotator, personas.project) == item2
    with pytest.raises(DomainError, match="exactly once"):
        _judge(personas.annotator, item2, {"ranking": [["A"], ["B"]]}, key="k2")


@READ
def test_it_stores_one_judgement_for_the_same_key_twice(personas: Personas, read: bool) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    _quality_rows(personas.project, personas.annotator)
    _take(personas.annotator, personas.project)
    first = _judge(personas.annotator, item, {"choice": "tie"}, key="same", read=read)
    again = _judge(personas.annotator, item, {"choice": "tie"}, key="same", read=read)
    assert first.pk == again.pk
    assert Judgement.objects.count() == 1
    with pytest.raises(DomainError, match="already judged"):
        _judge(personas.annotator, item, {"choice": "A"}, key="other", read=read)
    with pytest.raises(DomainError, match="changes made after submitting were not saved"):
        _judge(personas.annotator, item, {"choice": "A"}, key="same", read=read)
    assert AuditEvent.objects.filter(action="judgement.submit").count() == 1


def test_it_can_require_a_rationale(personas: Personas) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", rationale_required=True)
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    _take(personas.annotator, personas.project)
    with pytest.raises(DomainError, match="rationale"):
        _judge(personas.annotator, item, {"choice": "A"})
    assert _judge(personas.annotator, item, {"choice": "A"}, rationale="More precise.").rationale == "More precise."


def _served_gold(personas: Personas) -> Item:
    """Ask for comparisons until a gold one is handed out (at the project's gold rate, 50 % here)."""
    for _ in range(100):
        item = services.comparison_next(user=personas.annotator, project=personas.project)
        if item is not None and item.gold is not None:
            return item
    raise AssertionError("no gold item was served")


def test_it_lets_no_one_judge_or_tell_apart_a_gold_item_never_handed_out(personas: Personas) -> None:
    """Trying ids: a gold comparison the annotator was never handed answers as any comparison that is not
    theirs (refused, nothing stored); once handed out, it may be judged, and the answer does not say gold."""
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.5)
    gold, plain = one_gold_and_one_plain(personas.project, personas.data_lead)
    refusals = []
    for item in (gold, plain):
        with pytest.raises(DomainError) as refused:
            _judge(personas.annotator, item, {"choice": "A"}, key=f"probe-{item.pk}")
        refusals.append((refused.value.message, refused.value.status))
    assert refusals[0] == refusals[1], "the same refusal for a gold and a plain comparison"
    assert not Judgement.objects.exists()
    assert _served_gold(personas) == gold
    assert AuditEvent.objects.filter(action="queue.lease", object_id=str(gold.pk), payload__gold=True).count() == 1
    judged = _judge(personas.annotator, gold, {"choice": letter_of(personas.annotator, gold, 0)}, key="served")
    assert (judged.is_gold, judged.gold_correct) == (True, True)


def test_it_flags_an_annotator_whose_gold_accuracy_is_below_the_threshold(personas: Personas) -> None:
    set_mode(
        personas.project, personas.data_lead, "pairwise", gold_rate=0.5, gold_minimum=3, gold_accuracy_threshold=0.7
    )
    lines = [comparison_line(f"Gold {n}?", f"Good {n}", f"Bad {n}", gold=1) for n in range(4)]
    import_comparisons(personas.project, personas.data_lead, *lines)
    for n in range(3):
        gold = _served_gold(personas)
        wrong = letter_of(personas.annotator, gold, 1)  # candidate 1 is the bad one
        _judge(personas.annotator, gold, {"choice": wrong}, key=f"g{n}")
    quality = AnnotatorQuality.objects.get(project=personas.project, annotator=personas.annotator)
    assert (quality.gold_seen, quality.gold_correct, quality.flagged) == (3, 0, True)
    services.annotator_set_excluded(actor=personas.data_lead, quality=quality, excluded=True)
    quality.refresh_from_db()
    assert quality.excluded


@READ
def test_it_opens_an_adjudication_on_disagreement_beyond_the_threshold(personas: Personas, read: bool) -> None:
    set_k(personas.project, personas.data_lead, 3)
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    people = [personas.annotator, personas.reviewer, personas.project_admin]
    _quality_rows(personas.project, *people)
    for n, (user, candidate) in enumerate(zip(people, [0, 1, 0], strict=True)):
        _take(user, personas.project)
        assert not Adjudication.objects.exists()
        _judge(user, item, {"choice": letter_of(user, item, candidate)}, key=f"d{n}", read=read)
    adjudication = Adjudication.objects.get(item=item)
    assert adjudication.agreement == pytest.approx(2 / 3), "2 of 3 agree: under the 0.67 threshold"
    events = AuditEvent.objects.filter(project=personas.project).order_by("seq")
    submits = [e for e in events if e.action in ("judgement.submit", "adjudication.open")]
    assert [e.action for e in submits] == ["judgement.submit"] * 3 + ["adjudication.open"]
    judgements = {str(j.pk): j for j in Judgement.objects.filter(item=item)}
    for event in submits[:3]:
        judgement = judgements[event.object_id]
        assert event.object_type == "preferences.judgement"
        assert event.actor_id == judgement.annotator_id
        assert event.payload == {"item": item.pk, "result": judgement.result, "gold": False, "too_fast": False}
    assert submits[3].payload == {"item": item.pk, "agreement": 2 / 3, "judgements": 3}
    assert all(e.hash == e.compute_hash() for e in events)
    with pytest.raises(DomainError, match="judged this comparison yourself"):
        services.adjudication_decide(
            reviewer=personas.reviewer, adjudication=adjudication, result={"winner": 0}, note=""
        )
    decided = services.adjudication_decide(
        reviewer=personas.staff, adjudication=adjudication, result={"winner": 0}, note="A is exact."
    )
    assert decided.result == {"winner": 0}
    assert decided.decided_at is not None


@READ
def test_it_needs_no_adjudication_for_a_unanimous_item(personas: Personas, read: bool) -> None:
    set_k(personas.project, personas.data_lead, 2)
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    _quality_rows(personas.project, personas.annotator, personas.reviewer)
    for n, user in enumerate([personas.annotator, personas.reviewer]):
        _take(user, personas.project)
        _judge(user, item, {"choice": letter_of(user, item, 1)}, key=f"u{n}", read=read)
    assert not Adjudication.objects.exists()


def test_it_computes_position_bias_and_win_rates(personas: Personas) -> None:
    from preferences import selectors

    items = make_comparisons(personas.project, personas.data_lead, 6)
    for n, item in enumerate(items):
        _take(personas.annotator, personas.project)
        _judge(personas.annotator, item, {"choice": "A"}, key=f"p{n}")
    ((shown, bias),) = selectors.position_bias_for(personas.project)
    assert shown == 2
    assert bias.share == 1.0
    assert bias.expected == 0.5
    assert bias.p_value is not None
    assert bias.p_value < 0.05
    rates = selectors.win_rates_for(personas.project)
    assert set(rates) == {"m-alpha", "m-beta"}
    assert rates["m-alpha"].comparisons == 6


@READ
@pytest.mark.django_db(transaction=True)
def test_it_stores_every_judgement_of_32_threads_once(personas: Personas, on_postgres: None, read: bool) -> None:
    set_k(personas.project, personas.data_lead, 2)
    make_comparisons(personas.project, personas.data_lead, 64)
    people = [MembershipFactory.create(project=personas.project, role=Role.ANNOTATOR).user for _ in range(32)]
    _quality_rows(personas.project, *people)

    def work(user) -> None:  # type: ignore[no-untyped-def]
        for _ in range(6):
            item = services.comparison_next(user=user, project=personas.project)
            if item is None:
                break
            key = f"{user.pk}-{item.pk}"
            for _ in range(2):  # a double submit must store one judgement
                _judge(user, item, {"choice": "A"}, key=key, read=read)

    assert run_at_once([functools.partial(work, u) for u in people]) == []
    judgements = Judgement.objects.filter(item__project=personas.project)
    assert judgements.count() == 128, "64 items × k=2, none lost"
    assert judgements.values("item", "annotator").distinct().count() == 128, "none duplicated"
    per_item = {i.pk: i.judgements.count() for i in Item.objects.filter(project=personas.project)}
    assert set(per_item.values()) == {2}, "k never exceeded"
    assert Slot.objects.filter(project=personas.project).exclude(state=SlotState.DONE).count() == 0


def test_it_removes_the_draft_on_submit_and_a_late_autosave_saves_nothing(personas: Personas) -> None:
    from annotation.models import Draft

    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    _take(personas.annotator, personas.project)
    services.comparison_draft_save(user=personas.annotator, item=item, data={"shown": {"choice": "A"}}, time_spent_ms=9)
    assert Draft.objects.filter(user=personas.annotator, item=item).exists()
    _judge(personas.annotator, item, {"choice": "A"})
    assert not Draft.objects.filter(user=personas.annotator).exists()
    late = services.comparison_draft_save(user=personas.annotator, item=item, data={}, time_spent_ms=10)
    assert late is None
    assert not Draft.objects.filter(user=personas.annotator).exists()
    # An autosave that asked "judged yet?" just before the submit committed, then waited on the slot lock:
    # the finished slot stops it.
    raced = annotation_services.draft_save(user=personas.annotator, item=item, data={}, time_spent_ms=11)
    assert raced is None
    assert not Draft.objects.filter(user=personas.annotator).exists()


def test_it_counts_rankings_towards_position_bias_and_win_rates(personas: Personas) -> None:
    from preferences import selectors

    set_mode(personas.project, personas.data_lead, "ranking")
    items = make_comparisons(personas.project, personas.data_lead, 3, candidates=3)
    for n, item in enumerate(items):
        _take(personas.annotator, personas.project)
        # Candidate 0 (m-alpha) alone on top; 1 (m-beta) and 2 (m-alpha again) tie below.
        best, rest = letter_of(personas.annotator, item, 0), [letter_of(personas.annotator, item, c) for c in (1, 2)]
        _judge(personas.annotator, item, {"ranking": [[best], rest]}, key=f"r{n}")
    ((shown, bias),) = selectors.position_bias_for(personas.project)
    assert shown == 3
    assert bias.expected == pytest.approx(1 / 3)
    firsts = sum(results.display_order(personas.annotator, i)[1][0] == 0 for i in items)
    assert bias.share == pytest.approx(firsts / 3)
    rates = selectors.win_rates_for(personas.project)
    # Per item: alpha(0) beats beta(1), alpha(0) beats alpha(2) (same system: left out), beta(1) ties alpha(2).
    assert rates["m-beta"].comparisons == 6
    assert rates["m-beta"].wins == pytest.approx(1.5)
    assert rates["m-alpha"].wins == pytest.approx(4.5)


def test_it_maps_per_criterion_choices_back_and_gives_them_their_own_alpha(personas: Personas) -> None:
    from tests.annotation.helpers import give_rubric

    give_rubric(personas.project, personas.data_lead)  # criteria: correct, helpful, tone
    set_mode(personas.project, personas.data_lead, "per_criterion")
    set_k(personas.project, personas.data_lead, 2)
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    _take(personas.annotator, personas.project)
    with pytest.raises(DomainError, match="missing: tone"):
        _judge(personas.annotator, item, {"criteria": {"correct": "A", "helpful": "A"}, "overall": "A"})
    one = letter_of(personas.annotator, item, 1)
    judgement = _judge(
        personas.annotator, item, {"criteria": {"correct": one, "helpful": "tie", "tone": "both_bad"}, "overall": one}
    )
    assert judgement.result == {"criteria": {"correct": 1, "helpful": "tie", "tone": "both_bad"}, "overall": 1}
    _take(personas.reviewer, personas.project)
    other = letter_of(personas.reviewer, item, 1)
    _judge(
        personas.reviewer, item, {"criteria": {"correct": other, "helpful": "tie", "tone": "tie"}, "overall": other},
        key="k2",
    )  # fmt: skip
    figures = services.agreement_recompute(project=personas.project).figures
    assert set(figures["alpha_per_criterion"]) == {"correct", "helpful", "tone"}


@READ
@pytest.mark.parametrize(("threshold", "opened"), [(0.5, False), (0.51, True)])
def test_it_opens_an_adjudication_strictly_below_the_threshold(
    personas: Personas, threshold: float, opened: bool, read: bool
) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", adjudication_threshold=threshold)
    set_k(personas.project, personas.data_lead, 2)
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    _quality_rows(personas.project, personas.annotator, personas.reviewer)
    for n, (user, candidate) in enumerate([(personas.annotator, 0), (personas.reviewer, 1)]):
        _take(user, personas.project)
        _judge(user, item, {"choice": letter_of(user, item, candidate)}, key=f"t{n}", read=read)
    assert Adjudication.objects.filter(item=item).exists() is opened, "1 of 2 agree: 0.5"


def test_it_refuses_a_key_stored_for_one_judgement_for_another(personas: Personas) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    make_comparisons(personas.project, personas.data_lead, 3)
    first = _take(personas.annotator, personas.project)
    stored = _judge(personas.annotator, first, {"choice": "A"}, key="shared-key")
    assert _judge(personas.annotator, first, {"choice": "A"}, key="shared-key") == stored, "a resend: the stored one"
    for changed in ({"choice": "B"}, {"choice": "nonsense"}):  # the page came back with Back and was changed
        with pytest.raises(DomainError, match="changes made after submitting were not saved") as refused:
            _judge(personas.annotator, first, changed, key="shared-key")
        assert refused.value.status == 409
    stored.refresh_from_db()
    assert stored.displayed_result["choice"] == "A", "the first judgement stands"
    second = _take(personas.annotator, personas.project)
    with pytest.raises(DomainError, match="already used for another judgement"):
        _judge(personas.annotator, second, {"choice": "A"}, key="shared-key")
    slot = Slot.objects.get(item=second, user=personas.annotator)
    assert slot.state == SlotState.LEASED, "the refused submit changed nothing"
    assert not Judgement.objects.filter(item=second).exists()
    other = _take(personas.reviewer, personas.project)
    with pytest.raises(DomainError, match="already used for another judgement"):
        _judge(personas.reviewer, other, {"choice": "A"}, key="shared-key")
    assert Judgement.objects.count() == 1


@READ
@pytest.mark.django_db(transaction=True)
def test_it_still_opens_the_adjudication_for_the_last_two_judgements_at_once(
    personas: Personas, on_postgres: None, read: bool
) -> None:
    """Two annotators submit the last judgements of an item at the same moment and disagree: each alone saw
    only its own result and the earlier ones, so neither opened the adjudication. The item's row lock makes
    the later one wait and see both."""
    set_k(personas.project, personas.data_lead, 2)
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    items = make_comparisons(personas.project, personas.data_lead, 12)
    pair = [personas.annotator, personas.reviewer]
    _quality_rows(personas.project, *pair)
    for n, item in enumerate(items):
        assert [_take(user, personas.project).pk for user in pair] == [item.pk, item.pk]

        def judge(user, candidate, item=item, n=n) -> None:  # type: ignore[no-untyped-def]
            _judge(user, item, {"choice": letter_of(user, item, candidate)}, key=f"race-{n}-{user.pk}", read=read)

        judges = [functools.partial(judge, user, c) for user, c in zip(pair, [0, 1], strict=True)]
        assert run_at_once(judges, together=True) == []
    assert Judgement.objects.count() == 24
    opened = set(Adjudication.objects.values_list("item_id", flat=True))
    assert opened == {item.pk for item in items}, "every split item goes to adjudication"


def test_it_ranks_a_comparison_of_three_in_a_pairwise_project(personas: Personas, client_for: ClientFor) -> None:
    """A pair choice needs two candidates: an N-way comparison in a pairwise project is served and judged as a
    ranking instead of holding up the annotator until the lease runs out."""
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.0)
    (three,) = make_comparisons(personas.project, personas.data_lead, 1, candidates=3)
    api = client_for(personas.annotator)
    shown = api.post(f"/api/v1/projects/{personas.project.pk}/comparisons/next/").json()
    assert (shown["id"], shown["mode"]) == (three.pk, "ranking")
    page = api.get(f"/projects/{personas.project.pk}/compare/{three.pk}/").content.decode()
    assert 'name="rank_A"' in page, "the page offers ranks, not A/B"
    ranking = [[letter_of(personas.annotator, three, c)] for c in (2, 0, 1)]
    judgement = _judge(personas.annotator, three, {"ranking": ranking})
    assert (judgement.mode, judgement.result) == ("ranking", {"ranking": [[2], [0], [1]]})
