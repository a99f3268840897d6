"""The use cases of the evaluation app. Every state change is audited.

Deployment targets, promotion and rollback (the gate, the four-eyes rules and the carrying out are
``evaluation.deployment``)."""

# --- Deployment targets, promotion and rollback ------------------------------------------------------------

from evaluation.deployment import deployment_target_create as deployment_target_create
from evaluation.deployment import deployment_target_update as deployment_target_update
from evaluation.deployment import gate_check as gate_check
from evaluation.deployment import promotion_approve as promotion_approve
from evaluation.deployment import promotion_refuse as promotion_refuse
from evaluation.deployment import promotion_request as promotion_request
from evaluation.deployment import promotion_withdraw as promotion_withdraw
from evaluation.deployment import rollback_request as rollback_request
