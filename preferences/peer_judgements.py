"""Imported judgements: what a peer tool's file brings (``annotation.peer_import``) stored as judgements of
this project, each keeping its origin, with the after-effects a judgement made here has on its item
(adjudication when its judgements disagree) and on the project's agreement figures."""

import hashlib
from typing import Any

from accounts.services import audit_event_record
from annotation.models import ImportBatch
from annotation.peer_import import ImportedJudgement
from preferences.adjudication import adjudication_create, disputed_agreement
from preferences.agreement_runs import agreement_schedule
from preferences.models import Judgement, JudgementMode
from preferences.results import LETTERS
from preferences.selectors import preference_settings

_CHUNK = 1000


def judgements_import(batch: ImportBatch, judgements: list[ImportedJudgement]) -> None:
    """Store imported judgements (within the import's transaction) in candidate ids, as shown in the file's
    own order (the peer tool's left/right is its display order), and open an adjudication for an item whose
    judgements disagree beyond the project's threshold. The import's own audit event counts them."""
    if not judgements:
        return
    Judgement.objects.bulk_create(
        [
            Judgement(
                item=j.item,
                annotator=j.annotator,
                mode=JudgementMode.RANKING if "ranking" in j.result else JudgementMode.PAIRWISE,
                seed=0,
                displayed_order=list(range(len(j.item.candidates))),
                result=j.result,
                displayed_result=_as_shown(j.result),
                rationale=j.rationale.strip(),
                time_spent_ms=j.time_spent_ms,
                idempotency_key=hashlib.sha256(f"import:{batch.pk}:{j.item.pk}:{j.annotator.pk}".encode()).hexdigest(),
                origin=j.origin,
            )
            for j in judgements
        ],
        batch_size=_CHUNK,
    )
    threshold = preference_settings(batch.project).adjudication_threshold
    by_item: dict[int, list[dict[str, Any]]] = {}
    items = {}
    for j in judgements:
        by_item.setdefault(j.item.pk, []).append(j.result)
        items[j.item.pk] = j.item
    for pk, results in by_item.items():
        disputed = disputed_agreement(items[pk], results)
        if disputed is not None and disputed[0] < threshold:
            opened = adjudication_create(items[pk], agreement=disputed[0])
            if opened is not None:
                payload = {"item": pk, "agreement": disputed[0], "judgements": disputed[1], "import": batch.pk}
                audit_event_record(
                    actor=None, action="adjudication.open", target=opened, project=batch.project, payload=payload
                )
    agreement_schedule(batch.project)


def _as_shown(result: dict[str, Any]) -> dict[str, Any]:
    """The choice in display letters, candidates shown in file order: what the position-bias check reads."""
    if "ranking" in result:
        return {"ranking": [[LETTERS[c] for c in tier] for tier in result["ranking"]]}
    winner = result.get("winner")
    choice = LETTERS[winner] if isinstance(winner, int) else winner
    return {"choice": choice, "strength": result.get("strength")}
