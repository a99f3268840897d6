"""Each hand-written statement of ``preferences.submit_sql`` reads what its ORM twin reads, on the same data:
the comparison a submit names, the judgement under a key, the quality row (present or absent), the item's
results without gold, the quality row and results together, and the gold pick. The PostgreSQL-only
statements run where PostgreSQL does; the others on every database."""

import json
from typing import Any

import pytest
from django.db.models import Model

from accounts.models import User
from annotation.models import Item
from preferences import submit_sql
from preferences.gold import gold_assign
from preferences.models import AnnotatorQuality, Judgement
from tests.conftest import Personas
from tests.preferences.helpers import make_comparisons, set_mode

pytestmark = pytest.mark.django_db


def _values(instance: Model | None) -> dict[str, Any] | None:
    if instance is None:
        return None
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def _sorted(results: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in results)


def _judge(item: Item, user: User, result: dict[str, Any], *, is_gold: bool = False) -> Judgement:
    return Judgement.objects.create(
        item=item, annotator=user, mode="pairwise", seed=1, displayed_order=[0, 1], result=result,
        displayed_result={"choice": "A"}, idempotency_key=f"k-{item.pk}-{user.pk}", is_gold=is_gold,
    )  # fmt: skip


def test_it_reads_the_comparison_a_submit_names_as_its_twin(personas: Personas) -> None:
    first, second = make_comparisons(personas.project, personas.data_lead, 2)
    Item.objects.filter(pk=second.pk).update(kind="sft")
    (elsewhere,) = make_comparisons(personas.other_project, personas.data_lead, 1)
    for project, pk in [
        (personas.project, first.pk),
        (personas.project, second.pk),
        (personas.project, elsewhere.pk),
        (personas.other_project, elsewhere.pk),
        (personas.project, first.pk + 10_000),
    ]:
        raw, orm = submit_sql.comparison_of_project(project, pk), submit_sql.comparison_of_project_orm(project, pk)
        assert _values(raw) == _values(orm)
    assert submit_sql.comparison_of_project(personas.project, first.pk) is not None


def test_it_reads_the_judgement_under_a_key_as_its_twin(personas: Personas) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    judgement = _judge(item, personas.annotator, {"winner": 1, "strength": 2})
    for key in (judgement.idempotency_key, "no-such-key"):
        assert _values(submit_sql.judgement_by_key(key)) == _values(submit_sql.judgement_by_key_orm(key))
    assert _values(submit_sql.judgement_by_key(judgement.idempotency_key)) == _values(judgement)


def test_it_reads_the_quality_row_present_or_absent_as_its_twin(personas: Personas) -> None:
    project, user = personas.project, personas.annotator
    assert submit_sql.quality_row(project, user) is None
    assert submit_sql.quality_row_orm(project, user) is None
    AnnotatorQuality.objects.create(project=project, annotator=user, gold_seen=3, gold_correct=2, flagged=True)
    AnnotatorQuality.objects.create(project=personas.other_project, annotator=user, gold_seen=9)
    raw = submit_sql.quality_row(project, user)
    assert raw is not None
    assert _values(raw) == _values(submit_sql.quality_row_orm(project, user))
    assert submit_sql.quality_row(project, personas.reviewer) is None


def test_it_reads_the_items_results_without_gold_as_its_twin(personas: Personas) -> None:
    item, other = make_comparisons(personas.project, personas.data_lead, 2)
    assert submit_sql.item_results(item) == submit_sql.item_results_orm(item) == []
    _judge(item, personas.annotator, {"winner": 0, "strength": 1})
    _judge(item, personas.reviewer, {"ranking": [[1], [0]]})
    _judge(item, personas.project_admin, {"winner": "tie", "strength": None}, is_gold=True)
    _judge(other, personas.annotator, {"winner": 1, "strength": 3})
    raw = submit_sql.item_results(item)
    assert _sorted(raw) == _sorted(submit_sql.item_results_orm(item))
    assert _sorted(raw) == _sorted([{"winner": 0, "strength": 1}, {"ranking": [[1], [0]]}])


def test_it_reads_the_quality_row_and_results_together_as_their_twins(personas: Personas, on_postgres: None) -> None:
    project, user = personas.project, personas.annotator
    (item,) = make_comparisons(project, personas.data_lead, 1)
    _judge(item, user, {"winner": 0, "strength": 2})
    _judge(item, personas.reviewer, {"winner": "both_bad", "strength": None}, is_gold=True)
    for with_row in (False, True):
        if with_row:
            AnnotatorQuality.objects.create(project=project, annotator=user, fast_judgements=4)
        quality, results = submit_sql.quality_and_item_results(project, user, item)
        twin_quality, twin_results = submit_sql.quality_and_item_results_orm(project, user, item)
        assert (quality is None) == (not with_row)
        assert _values(quality) == _values(twin_quality)
        assert _sorted(results) == _sorted(twin_results) == _sorted([{"winner": 0, "strength": 2}])


def test_it_picks_an_unjudged_gold_item_as_its_twin_does(personas: Personas, on_postgres: None) -> None:
    """The statement draws its start itself: its pick is one the twin makes from some start, the only one
    when one gold item is left, and none once the user judged them all."""
    set_mode(personas.project, personas.data_lead, "pairwise")
    items = make_comparisons(personas.project, personas.data_lead, 6)
    golds = items[1::2]
    Item.objects.filter(pk__in=[g.pk for g in golds]).update(gold=0)
    user, project = personas.annotator, personas.project
    for gold in golds:
        starts = range(items[0].pk, items[-1].pk + 2)
        twin_picks = {
            pick.pk for pick in (submit_sql.gold_unjudged_orm(user, project, start=s) for s in starts) if pick
        }
        for _ in range(5):
            pick = submit_sql.gold_unjudged(user, project)
            assert pick is not None
            assert pick.pk in twin_picks
            assert _values(pick) == _values(Item.objects.get(pk=pick.pk))
        gold_assign(user, gold)
        _judge(gold, user, {"winner": 0, "strength": 1}, is_gold=True)
    assert submit_sql.gold_unjudged(user, project) is None
    assert submit_sql.gold_unjudged_orm(user, project) is None
    assert submit_sql.gold_unjudged(personas.reviewer, project) is not None
    assert submit_sql.gold_unjudged_orm(personas.reviewer, project) is not None
