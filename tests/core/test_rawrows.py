"""The written-out statements of the annotators' hot path give what the querysets they stand for give:
the same instances (every column, converted as the ORM converts it), the same settings and permissions."""

from typing import Any

import pytest
from django.db.models import Model
from django.http import Http404

from accounts.models import ApiTokenInfo, Project, ProjectPerm
from accounts.permissions import get_project_for_user, project_perms_for
from accounts.services import api_token_create
from accounts.sql import tokens_with_user_and_info
from annotation import services as annotation_services
from annotation.models import Item, Slot
from core import rawrows
from preferences import services
from preferences.gold import gold_assign, gold_unjudged
from preferences.models import COMPARISON, PreferenceSettings
from preferences.permissions import SETTINGS, get_comparison_for_user
from tests.conftest import Personas
from tests.preferences.helpers import make_comparisons, set_mode

pytestmark = pytest.mark.django_db


def _values(instance: Model) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


_BY_PK = "SELECT {columns} FROM {table} t WHERE t.{pk} = %s"


def _raw(model: type[Model], pk: Any) -> Model:
    assert model._meta.pk is not None
    sql = _BY_PK.format(columns=rawrows.columns(model, "t"), table=model._meta.db_table, pk=model._meta.pk.column)
    found = rawrows.one(model, sql, [pk])
    assert found is not None
    return found


def test_it_builds_instances_equal_to_the_orms_for_every_column(personas: Personas) -> None:
    """JSON (items' messages and candidates, gold), datetimes, nullable keys, booleans, small ints."""
    set_mode(personas.project, personas.data_lead, "ranking")
    make_comparisons(personas.project, personas.data_lead, 2, candidates=3)
    slot = annotation_services.item_next(user=personas.annotator, project=personas.project, kind=COMPARISON)
    assert slot is not None
    cases: list[tuple[type[Model], Any]] = [
        (Item, slot.item_id),
        (Slot, slot.pk),
        (PreferenceSettings, personas.project.pk),
        (Project, personas.project.pk),
        (type(personas.annotator), personas.annotator.pk),
    ]
    for model, pk in cases:
        raw = _raw(model, pk)
        orm = model._default_manager.get(pk=pk)
        assert _values(raw) == _values(orm), model
        assert not raw._state.adding
        assert raw._state.db == orm._state.db
    assert isinstance(_raw(Item, slot.item_id).candidates, list)  # type: ignore[attr-defined]
    assert rawrows.is_null(Item, [None] * rawrows.width(Item))
    missing = _BY_PK.format(columns=rawrows.columns(Item, "t"), table=Item._meta.db_table, pk="id")
    assert rawrows.one(Item, missing, [slot.item_id + 10_000]) is None


def test_it_reads_the_token_with_its_user_and_info(personas: Personas) -> None:
    token, _ = api_token_create(user=personas.annotator, name="t", days=1)
    (found,) = tokens_with_user_and_info(token.token_key)
    assert _values(found) == _values(token)
    assert found.user == personas.annotator
    assert _values(found.user) == _values(type(personas.annotator).objects.get(pk=personas.annotator.pk))
    assert "info" in found._state.fields_cache
    assert found.info.name == "t"
    ApiTokenInfo.objects.filter(token=token).delete()
    (bare,) = tokens_with_user_and_info(token.token_key)
    assert bare._state.fields_cache["info"] is None
    assert tokens_with_user_and_info("nosuchkey") == []


@pytest.mark.parametrize("name", ["annotator", "reviewer", "data_lead", "project_admin", "outsider", "staff"])
def test_it_reads_the_project_with_settings_and_permissions_as_the_querysets_say(personas: Personas, name: str) -> None:
    user = personas.by_name(name)
    set_mode(personas.project, personas.data_lead, "pairwise")  # a preferences row; no annotation row yet
    fresh = Project.objects.get(pk=personas.project.pk)
    expected = project_perms_for(user, fresh)
    for perm in ProjectPerm.ALL:
        if perm in expected:
            project = get_project_for_user(user, personas.project.pk, perm, with_settings=SETTINGS)
            assert _values(project) == _values(fresh)
            assert project_perms_for(user, project) == expected
            cache = project._state.fields_cache
            assert _values(cache["preferences"]) == _values(PreferenceSettings.objects.get(project=fresh))
            assert cache["annotation"] is None  # as select_related leaves a missing one-to-one row
        else:
            with pytest.raises(Http404):
                get_project_for_user(user, personas.project.pk, perm, with_settings=SETTINGS)
    for missing in (987_654, "9" * 30):
        with pytest.raises(Http404):
            get_project_for_user(user, missing, ProjectPerm.VIEW)


def test_it_does_not_find_a_comparison_of_another_project_or_kind(personas: Personas) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    found = get_comparison_for_user(personas.annotator, personas.project.pk, item.pk)
    assert _values(found) == _values(Item.objects.get(pk=item.pk))
    assert found.project.pk == personas.project.pk
    with pytest.raises(Http404):
        get_comparison_for_user(personas.outsider, personas.other_project.pk, item.pk)
    with pytest.raises(Http404):
        get_comparison_for_user(personas.annotator, personas.project.pk, 10**30)  # beyond a bigint
    Item.objects.filter(pk=item.pk).update(kind="sft")
    with pytest.raises(Http404):
        get_comparison_for_user(personas.annotator, personas.project.pk, item.pk)


def test_it_serves_each_unjudged_gold_item_and_then_none_in_the_gold_pick(personas: Personas) -> None:
    """Whatever the random start, every gold item comes up, and none once the user judged them all."""
    set_mode(personas.project, personas.data_lead, "pairwise")
    items = make_comparisons(personas.project, personas.data_lead, 6)
    golds = items[1::2]
    Item.objects.filter(pk__in=[g.pk for g in golds]).update(gold=0)
    seen: set[int] = set()
    for n in range(len(golds)):
        gold = gold_unjudged(personas.annotator, personas.project)
        assert gold is not None
        assert gold.pk in {g.pk for g in golds} - seen
        seen.add(gold.pk)
        gold_assign(personas.annotator, gold)  # as comparison_next does when it serves one
        services.judgement_submit(
            user=personas.annotator, item=gold, shown={"choice": "A"}, rationale="", time_spent_ms=1,
            idempotency_key=f"g{n}",
        )  # fmt: skip
    assert seen == {g.pk for g in golds}
    assert gold_unjudged(personas.annotator, personas.project) is None
    assert gold_unjudged(personas.reviewer, personas.project) is not None
