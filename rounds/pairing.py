"""A round's comparisons: the pairs its pair policy chose among each prompt's generated candidates (with their
reward scores), recorded as ``RoundPair`` rows and imported into the project as comparison items through the
ordinary import path (scrubbed again, slotted, queued), tagged with the round so that its release selects them.

What annotators see of a pair is the conversation and the two answers, shuffled per user as every comparison
is; the round, the policy and the scores live in the candidates' provenance, which no annotator page shows."""

import io
import json
from typing import Any

from annotation import services as annotation_services
from annotation.models import Item
from annotation.parsing import ImportFormat
from core.errors import DomainError
from evaluation.models import Candidate, GenerationPrompt, RewardScore
from evaluation.pairs import Scored, choose_pairs
from rounds.models import Round, RoundPair


def scores_of(round_: Round) -> dict[int, float]:
    """Each candidate's reward under the round's reward model (empty without one)."""
    if round_.reward_model_id is None or round_.generation_run_id is None:
        return {}
    return dict(
        RewardScore.objects.filter(
            reward_model_id=round_.reward_model_id, candidate__run_id=round_.generation_run_id
        ).values_list("candidate_id", "score")
    )


def pairs_choose(round_: Round) -> list[RoundPair]:
    """Create the round's ``RoundPair`` rows: per prompt, ``pairs_per_prompt`` pairs by its policy (identical
    answers are never paired). Call inside a transaction holding the round's row."""
    scores = scores_of(round_)
    by_prompt: dict[int, list[Candidate]] = {}
    candidates = Candidate.objects.filter(run_id=round_.generation_run_id).order_by("prompt__index", "sample")
    for candidate in candidates:
        by_prompt.setdefault(candidate.prompt_id, []).append(candidate)
    rows: list[RoundPair] = []
    for prompt_id, answers in by_prompt.items():
        choices = choose_pairs(
            [Scored(id=c.pk, text=c.text, score=scores.get(c.pk)) for c in answers],
            round_.pairs_per_prompt,
            round_.pair_policy,
            seed=f"round-{round_.pk}-prompt-{prompt_id}",
        )
        for pair in choices:
            rows.append(
                RoundPair(
                    round=round_,
                    prompt_id=prompt_id,
                    first_id=pair.a,
                    second_id=pair.b,
                    first_score=pair.score_a,
                    second_score=pair.score_b,
                    policy=round_.pair_policy,
                )
            )
    return RoundPair.objects.bulk_create(rows)


def external_id(round_: Round, pair: RoundPair) -> str:
    return f"round-{round_.number}-pair-{pair.pk}"


def comparison_line(round_: Round, pair: RoundPair, prompt: GenerationPrompt, answers: list[Candidate]) -> str:
    """One comparison JSONL line: the prompt, the two answers (provenance: round, run, candidate, policy,
    reward model and score) and the round's tag."""
    scores = (pair.first_score, pair.second_score)
    candidates: list[dict[str, Any]] = []
    for answer, score in zip(answers, scores, strict=True):
        candidates.append(
            {
                "content": answer.text,
                "model": f"round {round_.number} policy",
                "round": round_.number,
                "run": answer.run_id,
                "candidate": answer.pk,
                "sample": answer.sample,
                "seed": answer.seed,
                "pair_policy": pair.policy,
                "reward_model": round_.reward_model_id,
                "reward_score": score,
            }
        )
    metadata = {**(prompt.metadata or {}), "tags": [round_.tag]}
    line = {"messages": prompt.messages, "candidates": candidates, "metadata": metadata}
    line["id"] = external_id(round_, pair)
    return json.dumps(line, ensure_ascii=False)


def comparisons_import(round_: Round, pairs: list[RoundPair]) -> int:
    """Import the pairs as comparison items of the round's project; links each pair to its item. Returns how
    many pairs have an item. Raises ``DomainError`` when the import fails, or when it finished and every pair
    was already in the project (the same prompts and answers as an earlier round's): nothing would be judged.
    Pairs the import dropped as duplicates are removed from the round, so judging can complete without them."""
    prompts = {p.pk: p for p in GenerationPrompt.objects.filter(pk__in={pair.prompt_id for pair in pairs})}
    answers = {
        c.pk: c for c in Candidate.objects.filter(pk__in={p.first_id for p in pairs} | {p.second_id for p in pairs})
    }
    lines = [
        comparison_line(round_, pair, prompts[pair.prompt_id], [answers[pair.first_id], answers[pair.second_id]])
        for pair in pairs
    ]
    batch = annotation_services.import_start(
        actor=round_.created_by,
        project=round_.project,
        upload=io.BytesIO(("\n".join(lines) + "\n").encode()),
        source_name=f"round-{round_.number}.jsonl",
        fmt=ImportFormat.COMPARISON_JSONL,
        skip_bad_lines=True,
        purpose="annotation",
    )
    if batch.status == "failed":
        raise DomainError(f"The round's comparisons could not be imported: {batch.failure_reason}")
    linked = pairs_link(round_)
    if batch.status == "done" and linked < len(pairs):
        round_.pairs.filter(item__isnull=True).delete()  # duplicates of comparisons the project already holds
        if not linked:
            raise DomainError(
                f"Every one of the round's {len(pairs)} pairs is already a comparison of the project (the same "
                "prompts and answers as an earlier round's: the policy answered as before). Start the round with "
                "new prompts, or another seed."
            )
    return linked


def pairs_link(round_: Round) -> int:
    """Point each pair at the comparison item imported for it (a large import finishes on a worker: called
    again until every pair has its item). Returns how many pairs have one."""
    waiting = {external_id(round_, pair): pair for pair in round_.pairs.filter(item__isnull=True)}
    if waiting:
        found = Item.objects.filter(project_id=round_.project_id, external_id__in=list(waiting)).values_list(
            "external_id", "pk"
        )
        for key, item_id in found:
            RoundPair.objects.filter(pk=waiting[key].pk).update(item_id=item_id)
    return round_.pairs.filter(item__isnull=False).count()
