"""The promotion gate: what a promotion request checks, and stores, before anyone approves it. Each check has a
name, a label, passed or not (or skipped, with why) and the numbers behind it: the adapter was trained on the
target's base model; its evaluation finished; the lower bound of its human win rate against the target's current
model reaches the target's threshold; its held-out figures are at most the target's margin worse. Reads only."""

from typing import Any

from django.utils import timezone

from evaluation.models import DeploymentTarget, Evaluation, EvaluationState
from training.models import Adapter, BaseModel

# Held-out figures the training job measured (``Adapter.metrics["evaluation"]``), first found first compared:
# (key, label, whether lower is better). SFT jobs measure eval loss, DPO jobs preference accuracy.
HELD_OUT_MEASURES: tuple[tuple[str, str, bool], ...] = (
    ("eval_loss", "held-out eval loss", True),
    ("preference_accuracy", "held-out preference accuracy", False),
)


# --- The checks ----------------------------------------------------------------------------------------------


def model_label(adapter: Adapter | None, base_model: BaseModel) -> str:
    return str(adapter) if adapter is not None else f"{base_model} (no adapter)"


def _count(n: float, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _check(name: str, label: str, passed: bool, detail: str, **numbers: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "passed": passed, "detail": detail, **numbers}


def _evaluation_check(target: DeploymentTarget, adapter: Adapter, evaluation: Evaluation | None) -> dict[str, Any]:
    label = "Finished evaluation of this adapter"
    if evaluation is None:
        return _check("evaluation", label, False, "No evaluation was given: evaluate the adapter first.")
    if evaluation.project_id != target.project_id:
        return _check("evaluation", label, False, f"Evaluation “{evaluation}” belongs to another project.")
    if evaluation.state != EvaluationState.FINISHED or not evaluation.results:
        state = evaluation.get_state_display().lower()
        return _check("evaluation", label, False, f"Evaluation “{evaluation}” has not finished (it is {state}).")
    first = evaluation.systems.filter(position=0).first()
    if first is None or first.adapter_id != adapter.pk:
        return _check(
            "evaluation", label, False, f"Evaluation “{evaluation}” did not evaluate {adapter} (its first system)."
        )
    judgements = int(evaluation.results.get("judgements", 0))
    return _check(
        "evaluation", label, True, f"Evaluation “{evaluation}” finished with {judgements} judgements.",
        evaluation=evaluation.pk, judgements=judgements,
    )  # fmt: skip


def _head_to_head(target: DeploymentTarget, results: dict[str, Any]) -> dict[str, Any] | None:
    """The entry of ``results`` that sets the adapter against the target's current model."""
    for entry in results.get("head_to_head", []):
        if target.current_adapter_id is not None and entry.get("adapter_id") == target.current_adapter_id:
            return dict(entry)
        if (
            target.current_adapter_id is None
            and entry.get("adapter_id") is None
            and entry.get("base_model_id") == target.base_model_id
        ):
            return dict(entry)
    return None


def _win_rate_check(target: DeploymentTarget, evaluation: Evaluation | None, finished: bool) -> dict[str, Any]:
    threshold = target.min_win_rate_lower
    label = "Human win rate against the current model"
    current = model_label(target.current_adapter, target.base_model)
    if evaluation is None or not finished:
        return _check("win_rate", label, False, "No finished evaluation to read it from.", threshold=threshold)
    entry = _head_to_head(target, evaluation.results or {})
    if entry is None:
        return _check(
            "win_rate", label, False,
            f"Evaluation “{evaluation}” did not compare the adapter with the current model, {current}.",
            threshold=threshold,
        )  # fmt: skip
    low = float(entry["low"])
    confidence = round(100 * float((evaluation.results or {}).get("confidence", 0.95)))
    numbers = {
        "threshold": threshold,
        "low": low,
        "high": float(entry["high"]),
        "win_rate": float(entry["win_rate"]),
        "wins": int(entry["wins"]),
        "ties": int(entry["ties"]),
        "losses": int(entry["losses"]),
    }
    passed = low >= threshold
    relation = "reaches" if passed else "is below"
    detail = (
        f"Against {current}: win rate {numbers['win_rate']:.3f} ({_count(numbers['wins'], 'win')}, "
        f"{_count(numbers['ties'], 'tie')}, {_count(numbers['losses'], 'loss', 'losses')}); the lower bound of its "
        f"{confidence}% interval, {low:.3f}, {relation} the "
        f"target's threshold {threshold:.3f}."
    )
    return _check("win_rate", label, passed, detail, **numbers)


def _held_out(adapter: Adapter, when: str) -> dict[str, Any]:
    figures = (adapter.metrics or {}).get("evaluation", {}).get(when) or {}
    return figures if isinstance(figures, dict) else {}


def _held_out_check(target: DeploymentTarget, adapter: Adapter) -> dict[str, Any]:
    margin = target.max_metric_regression
    label = "Held-out figures against the current model"
    current = target.current_adapter
    mine = _held_out(adapter, "after")
    if current is not None and adapter.parent_id == current.pk and _held_out(adapter, "before"):
        # A continued adapter (a round's): its job measured the current adapter, its parent, on the same held-out
        # rows before training it further. The parent's own figures came from another release's rows.
        theirs = _held_out(adapter, "before")
        against = f"the current adapter {current}, which it continues, on the same held-out rows"
    elif current is not None:
        theirs, against = _held_out(current, "after"), f"the current adapter {current}"
    else:
        theirs, against = _held_out(adapter, "before"), "the base model on this adapter's held-out rows"
    for key, measure, lower_is_better in HELD_OUT_MEASURES:
        if key not in mine or key not in theirs:
            continue
        candidate, baseline = float(mine[key]), float(theirs[key])
        limit = baseline * (1 + margin) if lower_is_better else baseline * (1 - margin)
        passed = candidate <= limit if lower_is_better else candidate >= limit
        change = (candidate - baseline) / abs(baseline) if baseline else None
        worse = "above" if lower_is_better else "below"
        detail = (
            f"{measure.capitalize()} {candidate:.4f} against {baseline:.4f} for {against}: "
            + ("within" if passed else "more than")
            + f" the allowed {margin:.1%} {worse} it (limit {limit:.4f})."
        )
        return _check(
            "held_out", label, passed, detail,
            measure=key, candidate=candidate, current=baseline, limit=limit, margin=margin, change=change,
        )  # fmt: skip
    if current is None:
        reason = "Skipped: the target serves the base model alone and this adapter has no held-out figures measured "
        return _check("held_out", label, True, reason + "before and after its training.", skipped=True, margin=margin)
    if not any(key in mine for key, _, _ in HELD_OUT_MEASURES):
        return _check(
            "held_out", label, False,
            f"This adapter has no held-out figures (its release had no held-out rows); {against} cannot be "
            "compared with it.",
            margin=margin,
        )  # fmt: skip
    return _check(
        "held_out", label, True,
        f"Skipped: {against} has no held-out figure of the kind this adapter has, so none can be compared.",
        skipped=True, margin=margin,
    )  # fmt: skip


def gate_check(*, target: DeploymentTarget, adapter: Adapter, evaluation: Evaluation | None) -> dict[str, Any]:
    """The promotion gate for ``adapter`` on ``target`` with ``evaluation``: every check with pass or fail and its
    numbers (stored on the request, shown on its page). Reads only."""
    base = _check(
        "base_model", "Trained on the target's base model", adapter.base_model_id == target.base_model_id,
        f"{adapter} was trained on {adapter.base_model}; the target serves {target.base_model}.",
    )  # fmt: skip
    evaluated = _evaluation_check(target, adapter, evaluation)
    checks = [
        base,
        evaluated,
        _win_rate_check(target, evaluation, evaluated["passed"]),
        _held_out_check(target, adapter),
    ]
    return {
        "passed": all(check["passed"] for check in checks),
        "checks": checks,
        "current": {
            "adapter": target.current_adapter_id,
            "base_model": target.base_model_id,
            "label": model_label(target.current_adapter, target.base_model),
        },
        "thresholds": {
            "min_win_rate_lower": target.min_win_rate_lower,
            "max_metric_regression": target.max_metric_regression,
        },
        "checked_at": timezone.now().isoformat(),
    }


# --- Targets -----------------------------------------------------------------------------------------------
