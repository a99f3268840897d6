"""Deployment targets: the promotion gate, the four-eyes rules, promotion, rollback and their audit events."""

import pytest

from accounts.models import AuditEvent
from accounts.selectors import audit_chain_verify
from core.errors import DomainError
from evaluation import selectors, services
from evaluation.models import (
    Deployment,
    DeploymentTarget,
    EvaluationState,
    PromotionApproval,
    PromotionRequest,
    RequestKind,
    RequestState,
)
from tests.conftest import Personas
from tests.evaluation import deploy_helpers as h
from training.models import Adapter

pytestmark = pytest.mark.django_db

BEFORE, AFTER = {"eval_loss": 2.0}, {"eval_loss": 1.50}


def _nothing_written(target: DeploymentTarget) -> None:
    assert not PromotionRequest.objects.filter(target=target, state=RequestState.PENDING).exists()


class TestTargets:
    def test_it_creates_a_target_with_its_first_history_row_and_an_audit_event(self, personas: Personas) -> None:
        current = h.adapter(personas)
        target = h.target(personas, current, min_win_rate_lower=0.55)
        assert target.current_adapter == current
        assert [(d.kind, d.adapter_id) for d in target.history.all()] == [("created", current.pk)]
        event = AuditEvent.objects.get(action="deployment.target_create")
        assert event.payload["adapter_sha256"] == current.sha256
        assert event.payload["min_win_rate_lower"] == 0.55

    def test_it_refuses_a_bad_name_a_taken_name_and_thresholds_outside_0_to_1(self, personas: Personas) -> None:
        h.target(personas)
        with pytest.raises(DomainError, match="lowercase"):
            h.target(personas, name="Retail Banking")
        with pytest.raises(DomainError, match="already has a deployment target") as taken:
            h.target(personas)
        assert taken.value.status == 409
        with pytest.raises(DomainError, match="fraction"):
            h.target(personas, name="other", min_win_rate_lower=1.5)
        assert DeploymentTarget.objects.count() == 1

    def test_it_updates_thresholds_and_audits_the_change(self, personas: Personas) -> None:
        target = h.target(personas)
        services.deployment_target_update(actor=personas.project_admin, target=target, max_metric_regression=0.05)
        target.refresh_from_db()
        assert target.max_metric_regression == 0.05
        event = AuditEvent.objects.get(action="deployment.target_update")
        assert event.payload["changes"] == {"max_metric_regression": [0.02, 0.05]}


class TestGate:
    def test_it_passes_every_check_with_its_numbers(self, personas: Personas) -> None:
        current = h.adapter(personas, after={"eval_loss": 1.6})
        target = h.target(personas, current)
        candidate = h.adapter(personas, before=BEFORE, after=AFTER)
        gate = services.gate_check(
            target=target, adapter=candidate, evaluation=h.evaluation(personas, candidate, current)
        )
        assert gate["passed"]
        checks = {c["name"]: c for c in gate["checks"]}
        assert set(checks) == {"base_model", "evaluation", "win_rate", "held_out"}
        assert checks["win_rate"]["low"] == 0.62
        assert checks["win_rate"]["threshold"] == 0.5
        assert (checks["held_out"]["candidate"], checks["held_out"]["current"]) == (1.5, 1.6)
        assert checks["held_out"]["limit"] == pytest.approx(1.6 * 1.02)

    def test_it_refuses_a_request_without_an_evaluation(self, personas: Personas) -> None:
        target = h.target(personas)
        candidate = h.adapter(personas, before=BEFORE, after=AFTER)
        with pytest.raises(DomainError, match="No evaluation was given"):
            services.promotion_request(actor=personas.project_admin, target=target, adapter=candidate, evaluation=None)
        _nothing_written(target)

    def test_it_refuses_an_unfinished_evaluation(self, personas: Personas) -> None:
        target = h.target(personas)
        candidate = h.adapter(personas, before=BEFORE, after=AFTER)
        judging = h.evaluation(personas, candidate, None, state=EvaluationState.JUDGING)
        with pytest.raises(DomainError, match="has not finished"):
            services.promotion_request(
                actor=personas.project_admin, target=target, adapter=candidate, evaluation=judging
            )
        _nothing_written(target)

    def test_it_refuses_a_win_rate_below_the_threshold(self, personas: Personas) -> None:
        target = h.target(personas, min_win_rate_lower=0.6)
        candidate = h.adapter(personas, before=BEFORE, after=AFTER)
        weak = h.evaluation(personas, candidate, None, low=0.55)
        with pytest.raises(DomainError, match=r"0\.550, is below the target's threshold 0\.600"):
            services.promotion_request(actor=personas.project_admin, target=target, adapter=candidate, evaluation=weak)
        _nothing_written(target)

    def test_it_refuses_an_evaluation_against_another_model_than_the_current(self, personas: Personas) -> None:
        current = h.adapter(personas, after={"eval_loss": 1.6})
        target = h.target(personas, current)
        candidate = h.adapter(personas, before=BEFORE, after=AFTER)
        against_base = h.evaluation(personas, candidate, None)
        with pytest.raises(DomainError, match="did not compare the adapter with the current model"):
            services.promotion_request(
                actor=personas.project_admin, target=target, adapter=candidate, evaluation=against_base
            )

    def test_it_refuses_a_held_out_regression_beyond_the_margin(self, personas: Personas) -> None:
        current = h.adapter(personas, after={"eval_loss": 1.0})
        target = h.target(personas, current, max_metric_regression=0.05)
        candidate = h.adapter(personas, after={"eval_loss": 1.06})
        refusal = r"1\.0600 against 1\.0000 .* more than the allowed 5\.0% above it \(limit 1\.0500\)"
        with pytest.raises(DomainError, match=refusal):
            services.promotion_request(
                actor=personas.project_admin, target=target, adapter=candidate,
                evaluation=h.evaluation(personas, candidate, current),
            )  # fmt: skip
        _nothing_written(target)
        within = h.adapter(personas, after={"eval_loss": 1.04})
        gate = services.gate_check(target=target, adapter=within, evaluation=h.evaluation(personas, within, current))
        assert gate["passed"]

    def test_it_compares_with_the_adapters_own_before_figures_when_the_base_model_serves(
        self, personas: Personas
    ) -> None:
        target = h.target(personas)
        worse = h.adapter(personas, before={"eval_loss": 1.0}, after={"eval_loss": 1.5})
        gate = services.gate_check(target=target, adapter=worse, evaluation=h.evaluation(personas, worse, None))
        held_out = next(c for c in gate["checks"] if c["name"] == "held_out")
        assert not held_out["passed"]
        assert "the base model on this adapter's held-out rows" in held_out["detail"]
        unmeasured = h.adapter(personas)
        gate = services.gate_check(
            target=target, adapter=unmeasured, evaluation=h.evaluation(personas, unmeasured, None)
        )
        held_out = next(c for c in gate["checks"] if c["name"] == "held_out")
        assert held_out["passed"]
        assert held_out["skipped"]
        assert held_out["detail"].startswith("Skipped:")

    def test_it_compares_a_continued_adapter_with_its_parent_on_the_same_held_out_rows(
        self, personas: Personas
    ) -> None:
        """A round's adapter continues the target's adapter: its job measured the parent on the round's held-out
        rows ("before"); the parent's own figures came from another release and are not compared."""
        parent = h.adapter(personas, after={"preference_accuracy": 1.0}, sha="a")
        target = h.target(personas, parent, max_metric_regression=0.2)
        child = h.adapter(personas, before={"preference_accuracy": 0.5}, after={"preference_accuracy": 0.75})
        Adapter.objects.filter(pk=child.pk).update(parent=parent)
        child.refresh_from_db()
        gate = services.gate_check(target=target, adapter=child, evaluation=h.evaluation(personas, child, parent))
        held_out = next(c for c in gate["checks"] if c["name"] == "held_out")
        assert held_out["passed"], held_out
        assert (held_out["candidate"], held_out["current"]) == (0.75, 0.5)
        assert "which it continues, on the same held-out rows" in held_out["detail"]
        # Not a continuation: the current adapter's own figures, as before (1.0 would refuse 0.75 at a 20 % margin).
        stranger = h.adapter(personas, before={"preference_accuracy": 0.5}, after={"preference_accuracy": 0.75})
        gate = services.gate_check(target=target, adapter=stranger, evaluation=h.evaluation(personas, stranger, parent))
        held_out = next(c for c in gate["checks"] if c["name"] == "held_out")
        assert not held_out["passed"]
        assert "more than the allowed 20.0% below it (limit 0.8000)" in held_out["detail"]


def _request(p: Personas, cast: h.Cast) -> PromotionRequest:
    """A promotion request that passed its gate, on a target serving ``current``, asked for by the requester."""
    current = h.adapter(p, after={"eval_loss": 1.6}, sha="a")
    target = h.target(p, current)
    candidate = h.adapter(p, starter=cast.starter, before=BEFORE, after=AFTER)
    return services.promotion_request(
        actor=cast.requester, target=target, adapter=candidate, evaluation=h.evaluation(p, candidate, current)
    )


class TestFourEyes:
    def test_it_stores_the_gate_and_refuses_a_second_pending_request(self, personas: Personas) -> None:
        cast = h.cast(personas)
        request = _request(personas, cast)
        assert request.gate["passed"]
        assert request.state == RequestState.PENDING
        other = h.adapter(personas, before=BEFORE, after=AFTER)
        with pytest.raises(DomainError, match="already has a pending promotion request") as pending:
            services.promotion_request(
                actor=cast.requester, target=request.target, adapter=other,
                evaluation=h.evaluation(personas, other, request.replaces_adapter),
            )  # fmt: skip
        assert pending.value.status == 409

    def test_it_promotes_after_two_approvals_by_other_people(self, personas: Personas) -> None:
        cast = h.cast(personas)
        request = _request(personas, cast)
        previous = request.replaces_adapter
        services.promotion_approve(actor=cast.approver, request=request, note="Looks right.")
        request.refresh_from_db()
        assert request.state == RequestState.PENDING  # one approval only: not promoted
        assert DeploymentTarget.objects.get(pk=request.target_id).current_adapter == previous
        services.promotion_approve(actor=cast.second_approver, request=request)
        request.refresh_from_db()
        target = DeploymentTarget.objects.get(pk=request.target_id)
        assert request.state == RequestState.DONE
        assert target.current_adapter == request.adapter
        deployment = Deployment.objects.get(request=request)
        assert (deployment.kind, deployment.adapter, deployment.previous_adapter) == (
            "promotion",
            request.adapter,
            previous,
        )
        promote = AuditEvent.objects.get(action="deployment.promote")
        assert request.adapter is not None
        assert promote.payload["approvers"] == ["approver", "approver2"]
        assert promote.payload["adapter_sha256"] == request.adapter.sha256

    def test_it_refuses_the_requesters_approval(self, personas: Personas) -> None:
        cast = h.cast(personas)
        request = _request(personas, cast)
        with pytest.raises(DomainError, match="The person who asked for it cannot approve it"):
            services.promotion_approve(actor=cast.requester, request=request)
        assert not PromotionApproval.objects.exists()

    def test_it_refuses_the_job_starters_approval(self, personas: Personas) -> None:
        cast = h.cast(personas)
        request = _request(personas, cast)
        with pytest.raises(DomainError, match="started the training job"):
            services.promotion_approve(actor=cast.starter, request=request)
        assert not PromotionApproval.objects.exists()

    def test_it_refuses_a_second_approval_by_the_same_person(self, personas: Personas) -> None:
        cast = h.cast(personas)
        request = _request(personas, cast)
        services.promotion_approve(actor=cast.approver, request=request)
        with pytest.raises(DomainError, match="has already approved") as twice:
            services.promotion_approve(actor=cast.approver, request=request)
        assert twice.value.status == 409
        request.refresh_from_db()
        assert request.state == RequestState.PENDING
        assert PromotionApproval.objects.filter(request=request).count() == 1

    def test_it_refuses_an_approval_without_the_approve_permission(self, personas: Personas) -> None:
        cast = h.cast(personas)
        request = _request(personas, cast)
        with pytest.raises(DomainError, match="may not approve"):
            services.promotion_approve(actor=personas.data_lead, request=request)
        assert not PromotionApproval.objects.exists()

    def test_it_refuses_and_withdraws_with_audit_events(self, personas: Personas) -> None:
        cast = h.cast(personas)
        request = _request(personas, cast)
        with pytest.raises(DomainError, match="withdraws it"):
            services.promotion_refuse(actor=cast.requester, request=request)
        services.promotion_refuse(actor=cast.approver, request=request, note="Too few prompts.")
        request.refresh_from_db()
        assert (request.state, request.decision_note) == (RequestState.REFUSED, "Too few prompts.")
        with pytest.raises(DomainError, match="refused already"):
            services.promotion_approve(actor=cast.second_approver, request=request)
        assert request.adapter is not None
        again = services.promotion_request(
            actor=cast.requester, target=request.target, adapter=request.adapter, evaluation=request.evaluation
        )
        services.promotion_withdraw(actor=cast.requester, request=again)
        assert PromotionRequest.objects.get(pk=again.pk).state == RequestState.WITHDRAWN
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        assert {"deployment.refuse", "deployment.withdraw", "deployment.promotion_request"} <= actions


class TestRollback:
    def _promoted(self, p: Personas, cast: h.Cast) -> PromotionRequest:
        request = _request(p, cast)
        services.promotion_approve(actor=cast.approver, request=request)
        services.promotion_approve(actor=cast.second_approver, request=request)
        request.refresh_from_db()
        return request

    def test_it_rolls_back_to_an_earlier_adapter_with_a_reason_and_one_approval(self, personas: Personas) -> None:
        cast = h.cast(personas)
        promoted = self._promoted(personas, cast)
        target = DeploymentTarget.objects.get(pk=promoted.target_id)
        earlier = promoted.replaces_adapter
        assert selectors.rollback_choices(target) == [earlier]
        request = services.rollback_request(
            actor=cast.requester, target=target, adapter=earlier, reason="Complaints about tone since Monday."
        )
        assert request.kind == RequestKind.ROLLBACK
        with pytest.raises(DomainError, match="cannot approve"):
            services.promotion_approve(actor=cast.requester, request=request)
        services.promotion_approve(actor=cast.approver, request=request)
        target.refresh_from_db()
        assert target.current_adapter == earlier
        assert [d.kind for d in target.history.all()] == ["rollback", "promotion", "created"]
        event = AuditEvent.objects.get(action="deployment.rollback")
        assert event.payload["reason"] == "Complaints about tone since Monday."

    def test_it_rolls_back_to_the_base_model_alone(self, personas: Personas) -> None:
        cast = h.cast(personas)
        promoted = self._promoted(personas, cast)
        target = DeploymentTarget.objects.get(pk=promoted.target_id)
        request = services.rollback_request(actor=cast.requester, target=target, adapter=None, reason="Incident 42.")
        services.promotion_approve(actor=cast.approver, request=request)
        target.refresh_from_db()
        assert target.current_adapter is None
        assert selectors.current_pointer(target)["adapter"] is None

    def test_it_refuses_a_rollback_without_a_reason_or_to_an_adapter_never_served(self, personas: Personas) -> None:
        cast = h.cast(personas)
        promoted = self._promoted(personas, cast)
        target = DeploymentTarget.objects.get(pk=promoted.target_id)
        with pytest.raises(DomainError, match="Say why"):
            services.rollback_request(
                actor=cast.requester, target=target, adapter=promoted.replaces_adapter, reason=" "
            )
        stranger = h.adapter(personas)
        with pytest.raises(DomainError, match="was never the current model"):
            services.rollback_request(actor=cast.requester, target=target, adapter=stranger, reason="Why not.")
        with pytest.raises(DomainError, match="already the current model"):
            services.rollback_request(actor=cast.requester, target=target, adapter=promoted.adapter, reason="Again.")
        _nothing_written(target)


def test_it_audits_every_step_and_keeps_the_chain_intact(personas: Personas) -> None:
    cast = h.cast(personas)
    request = _request(personas, cast)
    services.promotion_approve(actor=cast.approver, request=request)
    services.promotion_approve(actor=cast.second_approver, request=request)
    target = DeploymentTarget.objects.get(pk=request.target_id)
    back = services.rollback_request(actor=cast.requester, target=target, adapter=request.replaces_adapter, reason="r")
    services.promotion_approve(actor=cast.second_approver, request=back)
    actions = list(
        AuditEvent.objects.filter(action__startswith="deployment.").order_by("seq").values_list("action", flat=True)
    )
    assert actions == [
        "deployment.target_create", "deployment.promotion_request", "deployment.approve", "deployment.approve",
        "deployment.promote", "deployment.rollback_request", "deployment.approve", "deployment.rollback",
    ]  # fmt: skip
    verification = audit_chain_verify()
    assert verification.ok, verification.reason
