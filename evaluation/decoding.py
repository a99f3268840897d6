"""A generation run's decoding settings, validated in one place: the run form, the API and the blind
evaluations all build them with ``Decoding.from_input``; what is stored on the run is ``as_dict()``."""

import math
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import DomainError

LIMITS: dict[str, tuple[float, float]] = {
    "candidates": (1, 16),
    "temperature": (0.0, 5.0),
    "top_p": (0.01, 1.0),  # 0 would keep no token at all
    "max_new_tokens": (1, 4096),
    "seed": (0, 2**31 - 1),
    "batch_size": (1, 256),
}
INTEGERS = {"candidates", "max_new_tokens", "seed", "batch_size"}


@dataclass(frozen=True)
class Decoding:
    candidates: int = 1
    temperature: float = 0.0  # 0: greedy decoding; above 0: sampling
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 42
    batch_size: int = 8

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    @classmethod
    def from_input(cls, values: dict[str, Any] | None) -> "Decoding":
        """The defaults overlaid with ``values`` (missing, ``None`` or ``""`` keeps a default). Raises
        ``DomainError`` naming the field for an unknown key, a value that is not a number, one out of its range,
        or several candidates per prompt with greedy decoding (they would all be the same answer)."""
        values = {key: value for key, value in (values or {}).items() if value is not None and value != ""}
        unknown = sorted(set(values) - set(LIMITS))
        if unknown:
            raise DomainError(
                f"Unknown decoding setting “{unknown[0]}”; the settings are {', '.join(LIMITS)}.", field=unknown[0]
            )
        clean: dict[str, Any] = {}
        for name, (low, high) in LIMITS.items():
            if name not in values:
                continue
            raw = values[name]
            try:
                if isinstance(raw, bool):
                    raise ValueError
                number = float(raw)
                if name in INTEGERS and (not math.isfinite(number) or number != int(number)):
                    raise ValueError
            except (TypeError, ValueError):
                kind = "a whole number" if name in INTEGERS else "a number"
                raise DomainError(f"{name} must be {kind}.", field=name) from None
            if not (math.isfinite(number) and low <= number <= high):
                raise DomainError(f"{name} must be between {low:g} and {high:g}.", field=name)
            clean[name] = int(number) if name in INTEGERS else number
        decoding = cls(**clean)
        if decoding.candidates > 1 and not decoding.sampling:
            raise DomainError(
                "Several candidates per prompt need a temperature above 0: greedy decoding gives the same answer "
                "each time.",
                field="temperature",
            )
        return decoding

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
