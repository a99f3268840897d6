"""Approvals arriving together: the target's row lock lets exactly the approvals needed in and promotes once."""

import functools

import pytest

from accounts.models import AuditEvent, Role
from core.errors import DomainError
from evaluation import services
from evaluation.models import Deployment, PromotionApproval, PromotionRequest, RequestState
from tests.concurrency import run_at_once
from tests.conftest import Personas
from tests.evaluation import deploy_helpers as h
from tests.factories import MembershipFactory


@pytest.mark.django_db(transaction=True)
def test_it_promotes_once_when_three_approvers_approve_at_once(personas: Personas, on_postgres: None) -> None:
    cast = h.cast(personas)
    third = MembershipFactory.create(project=personas.project, role=Role.APPROVER).user
    current = h.adapter(personas, after={"eval_loss": 1.6}, sha="a")
    target = h.target(personas, current)
    candidate = h.adapter(personas, after={"eval_loss": 1.5})
    request = services.promotion_request(
        actor=cast.requester, target=target, adapter=candidate, evaluation=h.evaluation(personas, candidate, current)
    )
    approve = services.promotion_approve
    calls = [functools.partial(approve, actor=u, request=request) for u in (cast.approver, cast.second_approver, third)]
    errors = run_at_once(calls, together=True)
    assert len(errors) == 1
    assert isinstance(errors[0], DomainError)
    assert "carried out already" in errors[0].message
    assert PromotionApproval.objects.filter(request=request).count() == 2
    assert PromotionRequest.objects.get(pk=request.pk).state == RequestState.DONE
    assert Deployment.objects.filter(target=target, kind="promotion").count() == 1
    assert AuditEvent.objects.filter(action="deployment.promote").count() == 1
