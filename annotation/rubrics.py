"""Rubric criteria: their shape, and validation of scores against them. Pure functions, no database."""

import math
from dataclasses import dataclass
from typing import Any

from core.errors import DomainError

SCALES = {
    "pass_fail": "Pass / fail",
    "likert5": "Likert 1–5",
    "likert7": "Likert 1–7",
    "categories": "Named categories",
}


@dataclass(frozen=True)
class Criterion:
    key: str
    name: str
    guidance: str
    scale: str
    categories: tuple[str, ...]
    required: bool
    weight: float

    @property
    def scale_label(self) -> str:
        return SCALES[self.scale]

    @property
    def options(self) -> list[str]:
        """The values an annotator can pick, in keyboard order (1, 2, 3 …)."""
        if self.scale == "pass_fail":
            return ["pass", "fail"]
        if self.scale == "likert5":
            return [str(n) for n in range(1, 6)]
        if self.scale == "likert7":
            return [str(n) for n in range(1, 8)]
        return list(self.categories)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "guidance": self.guidance,
            "scale": self.scale,
            "categories": list(self.categories),
            "required": self.required,
            "weight": self.weight,
        }


def parse_criteria(raw: list[dict[str, Any]]) -> list[Criterion]:
    """Turn stored or submitted criteria into ``Criterion`` objects.

    Raises ``DomainError`` naming the criterion and what is wrong (missing name, unknown scale, fewer than
    two categories, duplicate key, negative weight); its ``field`` names the entry and its key as a client
    sent them, counting from 0: ``criteria[2].scale``.
    """
    criteria: list[Criterion] = []
    seen: set[str] = set()
    for position, entry in enumerate(raw, start=1):
        at = f"criteria[{position - 1}]"
        name = str(entry.get("name", "")).strip()
        if not name:
            raise DomainError(f"Criterion {position} needs a name.", field=f"{at}.name")
        key = str(entry.get("key") or _slug(name))
        if key in seen:
            raise DomainError(f"Two criteria are called “{name}”; names must differ.", field=f"{at}.name")
        seen.add(key)
        scale = str(entry.get("scale", ""))
        if scale not in SCALES:
            raise DomainError(f"Criterion “{name}” has an unknown scale “{scale}”.", field=f"{at}.scale")
        categories = tuple(str(c).strip() for c in entry.get("categories") or [] if str(c).strip())
        if scale == "categories" and len(categories) < 2:
            raise DomainError(f"Criterion “{name}” needs at least two categories.", field=f"{at}.categories")
        try:
            weight = float(entry.get("weight", 1))
        except (TypeError, ValueError):
            raise DomainError(f"Criterion “{name}” has a weight that is not a number.", field=f"{at}.weight") from None
        if not math.isfinite(weight) or weight < 0:
            raise DomainError(f"Criterion “{name}” needs a weight of 0 or more.", field=f"{at}.weight")
        criteria.append(
            Criterion(
                key=key,
                name=name,
                guidance=str(entry.get("guidance", "")).strip(),
                scale=scale,
                categories=categories if scale == "categories" else (),
                required=bool(entry.get("required", True)),
                weight=weight,
            )
        )
    return criteria


def validate_scores(criteria: list[Criterion], scores: dict[str, Any]) -> dict[str, str]:
    """Check a submission's scores: every required criterion scored, every value on its scale.

    Returns the scores as strings keyed by criterion key. Raises ``DomainError`` naming the first problem.
    """
    clean: dict[str, str] = {}
    known = {c.key for c in criteria}
    for key in scores:
        if key not in known:
            raise DomainError(f"“{key}” is not a criterion of this rubric.", field="scores")
    for criterion in criteria:
        value = scores.get(criterion.key)
        if value in (None, ""):
            if criterion.required:
                raise DomainError(f"Score “{criterion.name}” before submitting.", field="scores")
            continue
        text = str(value)
        if text not in criterion.options:
            allowed = ", ".join(criterion.options)
            raise DomainError(f"“{text}” is not on the scale of “{criterion.name}” ({allowed}).", field="scores")
        clean[criterion.key] = text
    return clean


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")[:50] or "criterion"
