"""What a judgement's result means, without writing anything: the order a user sees the candidates in,
a displayed-order choice checked and mapped to candidate ids, how a reviewer reads a result, whether it
gives the gold answer, and the labels agreement and adjudication compare."""

import hashlib
import random
from typing import Any

from django.conf import settings

from accounts.models import User
from annotation.models import Item
from core.errors import DomainError
from preferences.models import JudgementMode

PAIR_CHOICES = ("A", "B", "tie", "both_bad")
STRENGTHS = {1: "slightly", 2: "clearly", 3: "much"}
LETTERS = "ABCDEFGHIJKLMNOPQRST"


def display_order(user: User, item: Item) -> tuple[int, list[int]]:
    """The candidate ids in the order ``user`` sees them, and the seed that shuffled them. The seed is
    derived from a server secret, so the order is stable across reloads and cannot be chosen by a client."""
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:order:{user.pk}:{item.pk}".encode()).digest()
    seed = int.from_bytes(digest[:6], "big")
    order = list(range(len(item.candidates)))
    random.Random(seed).shuffle(order)  # noqa: S311 - a display shuffle, not a secret
    return seed, order


def _winner(choice: str, order: list[int]) -> int | str:
    if choice in {"tie", "both_bad"}:
        return choice
    return order[LETTERS.index(choice)]


def map_result(mode: str, shown: dict[str, Any], order: list[int], criteria: list[str]) -> dict[str, Any]:
    """Check a displayed-order choice and translate it into candidate ids. ``mode`` is the item's
    (``selectors.judgement_mode``: a pair choice only for two candidates). Raises ``DomainError``."""
    n = len(order)
    letters = list(LETTERS[:n])
    if mode == JudgementMode.PAIRWISE:
        choice = shown.get("choice")
        if choice not in PAIR_CHOICES:
            raise DomainError("Choose A, B, tie or both bad.", field="choice")
        strength: int | None = None
        if choice in {"A", "B"}:
            try:
                strength = int(shown.get("strength") or 1)
            except (TypeError, ValueError):
                strength = 0
            if strength not in STRENGTHS:
                raise DomainError("Strength is slightly (1), clearly (2) or much (3) better.", field="strength")
        return {"winner": _winner(str(choice), order), "strength": strength}
    if mode == JudgementMode.RANKING:
        tiers = shown.get("ranking")
        if not isinstance(tiers, list) or not all(isinstance(t, list) and t for t in tiers):
            raise DomainError("Rank every candidate.", field="ranking")
        flat = [str(x) for tier in tiers for x in tier]
        if sorted(flat) != letters:
            raise DomainError(f"Rank each of {', '.join(letters)} exactly once.", field="ranking")
        return {"ranking": [sorted(order[letters.index(str(x))] for x in tier) for tier in tiers]}
    per = shown.get("criteria") or {}
    if sorted(per) != sorted(criteria):
        missing = [c for c in criteria if c not in per]
        raise DomainError(f"Choose for every criterion (missing: {', '.join(missing) or 'none'}).", field="criteria")
    for key, choice in per.items():
        if choice not in PAIR_CHOICES:
            raise DomainError(f"“{choice}” is not a choice for {key}.", field="criteria")
    overall = shown.get("overall")
    if overall not in PAIR_CHOICES:
        raise DomainError("Choose overall: A, B, tie or both bad.", field="overall")
    return {
        "criteria": {key: _winner(str(choice), order) for key, choice in per.items()},
        "overall": _winner(str(overall), order),
    }


def describe_result(result: dict[str, Any] | None) -> str:
    """A judgement (in candidate ids) as a reviewer reads it, with candidates numbered from 1:
    "2 clearly better", "tie", "2 > 1 = 3", "overall 1 · accuracy: 1, tone: tie"."""
    if not result:
        return "—"

    def name(value: Any) -> str:
        return {"tie": "tie", "both_bad": "both bad"}.get(value, f"{value + 1}" if isinstance(value, int) else "?")

    if "ranking" in result:
        return " > ".join(" = ".join(str(c + 1) for c in tier) for tier in result["ranking"])
    if "criteria" in result:
        parts = ", ".join(f"{key}: {name(value)}" for key, value in result["criteria"].items())
        return f"overall {name(result.get('overall'))} · {parts}"
    winner = result.get("winner")
    if isinstance(winner, int) and result.get("strength") in STRENGTHS:
        return f"{name(winner)} {STRENGTHS[result['strength']]} better"
    return f"{name(winner)} better" if isinstance(winner, int) else name(winner)


def gold_matches(result: dict[str, Any], gold: Any) -> bool:
    """Whether a judgement (in candidate ids) gives the gold answer: gold is a candidate id, "tie", or a
    ranking (list of tiers of candidate ids)."""
    if isinstance(gold, list):
        return [sorted(t) for t in result.get("ranking", [])] == [sorted(t) for t in gold]
    answer = result.get("winner", result.get("overall"))
    if "ranking" in result:
        top = result["ranking"][0]
        answer = top[0] if len(top) == 1 else "tie"
    return answer == gold


def result_label(result: dict[str, Any]) -> str:
    """What two judgements must share to agree: the ranking, or the (overall) winner."""
    if "ranking" in result:
        return repr(result["ranking"])
    return str(result.get("winner", result.get("overall")))


def signed_strength(result: dict[str, Any]) -> int | None:
    """Pairwise preference on one ordinal scale: +strength for candidate 0, -strength for 1, 0 for a tie."""
    winner = result.get("winner")
    if winner == "tie":
        return 0
    if winner in (0, 1):
        return int(result.get("strength") or 1) * (1 if winner == 0 else -1)
    return None
