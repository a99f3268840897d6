"""A training job's configuration: presets, validation and the canonical, hashed form.

Everything is checked here, in the web process, before anything is queued: ranges, DPO loss types that this
TRL version knows, target modules that the base model has, and options that need hardware (QLoRA needs a
CUDA GPU with bitsandbytes) against what the ``gpu`` workers reported. The canonical form holds only the
keys that apply to the job's kind, sorted, so equal configs hash equally."""

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from core.errors import DomainError

# The loss types of TRL 1.16's DPOTrainer; several may be combined (e.g. ["sigmoid", "sft"], as in RPO).
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
ALL_LINEAR = "all-linear"
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

KINDS = ("sft", "dpo", "reward", "kto")
# The options that apply to some kinds only; a kind's canonical form (and so its hash) leaves the others out.
KIND_ONLY: dict[str, tuple[str, ...]] = {
    "packing": ("sft",),
    "beta": ("dpo", "kto"),
    "loss_type": ("dpo",),
    "desirable_weight": ("kto",),
    "undesirable_weight": ("kto",),
    "center_rewards_coefficient": ("reward",),
}
_NOT_FOR = {kind: tuple(name for name, kinds in KIND_ONLY.items() if kind not in kinds) for kind in KINDS}


@dataclass(frozen=True)
class JobConfig:
    kind: str
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = (ALL_LINEAR,)
    use_dora: bool = False
    use_qlora: bool = False
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = 0  # 0: run ``epochs`` epochs
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 1024
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    logging_steps: int = 1
    eval_steps: int = 0  # 0: evaluate before and after training only
    seed: int = 42
    # SFT only: pack examples into max_length blocks (best-fit decreasing), which TRL trains padding-free.
    # (Padding-free without packing is not offered: TRL 1.16 does not enforce max_length then, and its DPO
    # trainer falls back to padding.)
    packing: bool = False
    # DPO only
    beta: float = 0.1
    loss_type: tuple[str, ...] = ("sigmoid",)
    # Reward only: pulls the mean reward towards 0 (TRL's center_rewards_coefficient; 0: off), so scores of
    # different reward models sit on comparable scales.
    center_rewards_coefficient: float = 0.0
    # KTO only: the weights of desirable and undesirable answers' losses (KTO's paper: their counts times the
    # weights in a ratio of 1 to 4/3; equal counts, as a preference release gives, train well with 1 and 1).
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # unknown keys, refused by validate()

    @classmethod
    def from_dict(cls, kind: str, values: dict[str, Any]) -> "JobConfig":
        """Read a config from form or API input; raises ``DomainError`` naming the field that is wrong."""
        if kind not in KINDS:
            raise DomainError("The job kind is sft, dpo, reward or kto.", field="kind")
        known = {f.name for f in fields(cls)} - {"kind", "extra"}
        unknown = sorted(set(values) - known - {"kind"})
        if unknown:
            raise DomainError(f"Unknown config option “{unknown[0]}”.", field=unknown[0])
        ignored = _NOT_FOR[kind]
        parsed: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("kind", "extra") or f.name not in values or f.name in ignored:
                continue
            parsed[f.name] = _coerce(f.name, values[f.name], f.type)
        config = cls(kind=kind, **parsed)
        config.validate()
        return config

    def validate(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("lora_r", 1 <= self.lora_r <= 512, "LoRA rank is between 1 and 512."),
            ("lora_alpha", 1 <= self.lora_alpha <= 4096, "LoRA alpha is between 1 and 4096."),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "LoRA dropout is at least 0 and below 1."),
            ("learning_rate", 0 < self.learning_rate <= 1, "The learning rate is above 0 and at most 1."),
            ("epochs", 0 < self.epochs <= 100, "Epochs are above 0 and at most 100."),
            ("max_steps", 0 <= self.max_steps <= 10_000_000, "Max steps is 0 (use epochs) or a positive count."),
            ("batch_size", 1 <= self.batch_size <= 1024, "The batch size is between 1 and 1024."),
            (
                "gradient_accumulation_steps",
                1 <= self.gradient_accumulation_steps <= 1024,
                "Gradient accumulation is between 1 and 1024 steps.",
            ),
            ("max_length", 32 <= self.max_length <= 131_072, "max_length is between 32 and 131072 tokens."),
            ("lr_scheduler", self.lr_scheduler in SCHEDULERS, f"The scheduler is one of {', '.join(SCHEDULERS)}."),
            ("warmup_ratio", 0 <= self.warmup_ratio <= 0.5, "The warm-up ratio is between 0 and 0.5."),
            ("logging_steps", 1 <= self.logging_steps <= 10_000, "Log every 1 to 10000 steps."),
            ("eval_steps", 0 <= self.eval_steps <= 1_000_000, "Evaluate every N steps (0: before and after only)."),
            ("seed", 0 <= self.seed < 2**31, "The seed is between 0 and 2147483647."),
            ("target_modules", bool(self.target_modules), "Name at least one target module, or all-linear."),
            ("beta", 0 < self.beta <= 10, "Beta is above 0 and at most 10."),
            ("desirable_weight", 0 < self.desirable_weight <= 100, "The desirable weight is above 0 and at most 100."),
            (
                "undesirable_weight",
                0 < self.undesirable_weight <= 100,
                "The undesirable weight is above 0 and at most 100.",
            ),
            ("loss_type", bool(self.loss_type), "Choose at least one DPO loss type."),
            (
                "center_rewards_coefficient",
                0 <= self.center_rewards_coefficient <= 1,
                "The reward centring coefficient is between 0 (off) and 1.",
            ),
        ]
        for name, ok, message in checks:
            if not ok:
                raise DomainError(message, field=name)
        for module in self.target_modules:
            if module != ALL_LINEAR and not _MODULE_NAME.match(module):
                raise DomainError(f"“{module}” is not a module name.", field="target_modules")
        if ALL_LINEAR in self.target_modules and len(self.target_modules) > 1:
            raise DomainError("all-linear stands alone: it already targets every linear layer.", field="target_modules")
        for loss in self.loss_type:
            if loss not in DPO_LOSS_TYPES:
                raise DomainError(
                    f"Unknown DPO loss type “{loss}”; this TRL version knows {', '.join(DPO_LOSS_TYPES)}.",
                    field="loss_type",
                )
        if len(set(self.loss_type)) != len(self.loss_type):
            raise DomainError("A DPO loss type is listed twice.", field="loss_type")
        if self.kind == "kto" and self.batch_size < 2:
            raise DomainError(
                "KTO needs a batch of at least 2: its KL estimate pairs each answer with another prompt's in it.",
                field="batch_size",
            )
        if self.use_qlora and self.use_dora:
            raise DomainError("Choose DoRA or QLoRA, not both, in this version.", field="use_dora")

    def canonical(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("extra")
        for name in _NOT_FOR[self.kind]:
            values.pop(name)
        values["target_modules"] = sorted(set(values["target_modules"]))
        # Without per-loss weights TRL sums the losses, so their order carries no meaning: sorted.
        values["loss_type"] = sorted(values["loss_type"]) if "loss_type" in values else None
        if values["loss_type"] is None:
            values.pop("loss_type")
        return values

    @property
    def hash(self) -> str:
        return config_hash(self.canonical())

    @classmethod
    def from_canonical(cls, values: dict[str, Any]) -> "JobConfig":
        rest = {k: v for k, v in values.items() if k != "kind"}
        return cls.from_dict(values["kind"], rest)


def config_hash(canonical: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    kind = str(annotation)
    try:
        if kind in ("int", "<class 'int'>"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind in ("float", "<class 'float'>"):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
        if kind in ("bool", "<class 'bool'>"):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "on", "yes"):
                return True
            if str(value).lower() in ("false", "0", "off", "no", ""):
                return False
            raise ValueError
        if kind.startswith("tuple"):
            items = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
            if not all(isinstance(item, str) for item in items):
                raise ValueError
            return tuple(item for item in items if item)
    except (TypeError, ValueError):
        raise DomainError(f"“{value}” is not a valid value for {name}.", field=name) from None
    return value


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    description: str
    values: dict[str, Any]


PRESETS = {
    preset.key: preset
    for preset in (
        Preset(
            "cpu_check",
            "Quick check (CPU-sized)",
            "A few dozen steps with a high learning rate: proves the pipeline end to end on a tiny model in minutes.",
            {
                "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "learning_rate": 5e-3, "max_steps": 40,
                "batch_size": 4, "max_length": 384, "logging_steps": 1, "eval_steps": 10, "beta": 0.1,
            },
        ),
        Preset(
            "standard",
            "Standard LoRA",
            "Rank 16 on every linear layer, 2e-4 (SFT) or 5e-6 (DPO), one epoch, cosine schedule with warm-up.",
            {
                "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "learning_rate": 2e-4, "epochs": 1,
                "batch_size": 4, "gradient_accumulation_steps": 4, "max_length": 2048, "lr_scheduler": "cosine",
                "warmup_ratio": 0.03, "logging_steps": 5, "eval_steps": 50, "beta": 0.1,
            },
        ),
        Preset(
            "careful",
            "Careful (small data)",
            "Rank 8, lower learning rate, three epochs and frequent evaluation, for a few hundred examples.",
            {
                "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "learning_rate": 1e-4, "epochs": 3,
                "batch_size": 2, "gradient_accumulation_steps": 8, "max_length": 2048, "lr_scheduler": "cosine",
                "warmup_ratio": 0.1, "logging_steps": 1, "eval_steps": 10, "beta": 0.1,
            },
        ),
    )
}  # fmt: skip


# Below this many parameters a base model is CPU-sized (the demo's): the forms choose the quick preset for it.
SMALL_MODEL = 50_000_000


def preset_for(parameter_count: int | None) -> str:
    """The preset a form chooses first for a base model of this size."""
    return "cpu_check" if parameter_count and parameter_count < SMALL_MODEL else "standard"


def preset_values(key: str, kind: str) -> dict[str, Any]:
    """The values of a preset for a job kind (the standard preset's DPO learning rate is lower)."""
    if key not in PRESETS:
        raise DomainError(f"Unknown preset “{key}”.", field="preset")
    values = dict(PRESETS[key].values)
    if key == "standard" and kind in ("dpo", "kto"):
        values["learning_rate"] = 5e-6
    return values
