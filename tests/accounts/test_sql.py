"""Each hand-written statement of ``accounts.sql`` gives what its ORM twin gives on the same data: a user's
permissions on a project (through their role and through a group), the project with its settings rows, an
API token with its user and info, and the audit chain's append."""

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts import sql
from accounts.models import AuditEvent, Project, ProjectPerm
from accounts.selectors import audit_chain_verify
from accounts.services import api_token_create, audit_event_record
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


def _values(instance: Model | None) -> dict[str, Any] | None:
    if instance is None:
        return None
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def test_it_reads_a_users_permissions_as_guardian_does(personas: Personas, on_postgres: None) -> None:
    group = Group.objects.create(name="auditors")
    personas.annotator.groups.add(group)
    assign_perm(ProjectPerm.VIEW_AUDIT, group, personas.project)  # through a group, beside the role's
    for user in (personas.annotator, personas.reviewer, personas.data_lead, personas.project_admin, personas.outsider):
        for project in (personas.project, personas.other_project):
            assert sql.project_perms(user, project.pk) == sql.project_perms_orm(user, project), (user, project)
    assert ProjectPerm.VIEW_AUDIT in sql.project_perms(personas.annotator, personas.project.pk)
    assert sql.project_perms(personas.outsider, personas.project.pk) == frozenset()


@pytest.mark.parametrize("with_settings", [(), ("annotation",), ("annotation", "preferences")])
def test_it_reads_the_project_with_its_settings_and_permissions_as_the_queryset_does(
    personas: Personas, on_postgres: None, with_settings: tuple[str, ...]
) -> None:
    bare = Project.objects.create(name="no settings rows yet")
    for user in (personas.annotator, personas.data_lead, personas.outsider):
        for project in (personas.project, personas.other_project, bare):
            raw = sql.project_with_perms(user, project.pk, with_settings)
            orm = sql.project_with_perms_orm(user, project.pk, with_settings)
            assert raw is not None
            assert orm is not None
            assert _values(raw[0]) == _values(orm[0])
            assert raw[1] == orm[1], (user, project)
            for name in with_settings:
                assert name in raw[0]._state.fields_cache  # read with the project: no second query
                assert _values(getattr(raw[0], name, None)) == _values(getattr(orm[0], name, None))
    assert sql.project_with_perms(personas.annotator, bare.pk + 1000, with_settings) is None
    assert sql.project_with_perms_orm(personas.annotator, bare.pk + 1000, with_settings) is None


def test_it_reads_a_token_with_its_user_and_info_as_the_queryset_does(personas: Personas, on_postgres: None) -> None:
    with_info, _ = api_token_create(user=personas.annotator, name="with info", days=1)
    without_info, _ = api_token_create(user=personas.reviewer, name="to strip", days=1)
    without_info.info.delete()
    for key in (with_info.token_key, without_info.token_key, "nosuchkey"):
        raw = sql.tokens_with_user_and_info(key)
        orm = sql.tokens_with_user_and_info_orm(key)
        assert [_values(t) for t in raw] == [_values(t) for t in orm]
        assert [_values(t.user) for t in raw] == [_values(t.user) for t in orm]
        assert [_values(t._state.fields_cache["info"]) for t in raw] == [_values(getattr(t, "info", None)) for t in orm]
    assert len(sql.tokens_with_user_and_info(with_info.token_key)) == 1


def test_it_appends_audit_events_as_the_python_path_does(personas: Personas, on_postgres: None) -> None:
    """Both appends link to whatever head the other left: one chain, every hash what its content gives."""
    with transaction.atomic():
        for n in range(6):
            event = AuditEvent(
                created_at=timezone.now(),
                actor=personas.annotator,
                actor_label=personas.annotator.username,
                action=f"test.append_{n}",
                object_type="accounts.project",
                object_id=str(personas.project.pk),
                project=personas.project,
                payload={"n": n, "text": "naïve ünïcode"},
            )
            before = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
            (sql.audit_append if n % 2 else sql.audit_append_orm)(event)
            assert before is not None
            assert (event.seq, event.prev_hash) == (before["seq"] + 1, before["hash"])
            stored = AuditEvent.objects.get(pk=event.pk)
            assert stored.hash == event.hash == stored.compute_hash()
        audit_event_record(actor=None, action="test.after", payload={})
    verification = audit_chain_verify()
    assert verification.ok, verification.reason
    assert verification.head_seq == AuditEvent.objects.count()
