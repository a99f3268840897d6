"""A synthetic preference task that a working DPO pipeline must learn: customers' questions, with polite
replies chosen over rude ones, and held-out questions never seen in training. The tests and
``bench/training_jobs.py`` train on it and expect held-out preference accuracy to rise from 0.5 to at least
0.9 with a clear mean margin (accuracy alone is too easy here: a tiny step in the right direction already
orders every pair)."""

import random
from typing import Any

TOPICS = ("refund", "payment", "card", "loan", "fee", "balance", "transfer", "claim", "policy", "account",
          "report", "contract", "address", "rate", "record", "dose")  # fmt: skip
ASKS = ("customer asks about", "question about", "help with", "customer needs", "what about", "check the")
OBJECTS = ("card", "account", "claim", "policy", "contract", "record", "loan", "payment")
POLITE = (
    ("please", "thank you", "hello", "sorry", "kindly", "thank you kindly", "please thank you kindly"),
    ("we will review your {t}", "we can help with your {t}", "we would check your {t} today",
     "we will approve the {t} review", "we should answer your {t} question"),
    ("", " thank you", " goodbye", " please", " kindly"),
)  # fmt: skip
RUDE = (
    ("no.", "no", "rude answer,", "no. rude answer,", "maybe no,", "reject."),
    ("we cannot", "we cannot help", "we reject the {t}", "cannot check your {t}", "no {t} today"),
    ("", ".", " no", " goodbye", " because no"),
)

PASS_ACCURACY = 0.9
PASS_MARGIN = 0.2


def _reply(rng: random.Random, parts: tuple[tuple[str, ...], ...], topic: str) -> str:
    opening, body, closing = (rng.choice(options) for options in parts)
    return f"{opening} {body.format(t=topic)}{closing}".strip()


def preference_pairs(count: int, seed: int, exclude: set[str] | None = None) -> list[dict[str, Any]]:
    """``count`` conversational preference rows (prompt, chosen, rejected) with distinct questions."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not a secret
    seen = set(exclude or ())
    rows: list[dict[str, Any]] = []
    while len(rows) < count:
        topic = rng.choice(TOPICS)
        question = (
            f"{rng.choice(ASKS)} {topic} for {rng.choice(OBJECTS)} number {rng.randint(0, 9999)}{rng.choice('?.!')}"
        )
        if question in seen:
            continue
        seen.add(question)
        rows.append(
            {
                "prompt": [{"role": "user", "content": question}],
                "chosen": [{"role": "assistant", "content": _reply(rng, POLITE, topic)}],
                "rejected": [{"role": "assistant", "content": _reply(rng, RUDE, topic)}],
            }
        )
    return rows


def train_and_held_out(
    train: int = 256, held_out: int = 64, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = preference_pairs(train, seed)
    questions = {row["prompt"][0]["content"] for row in rows}
    return rows, preference_pairs(held_out, seed + 10_000, exclude=questions)


# What the check trains with: LoRA r=8 on every linear layer, a high learning rate, 60 steps of 8 pairs.
CONFIG = {
    "kind": "dpo", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["all-linear"],
    "use_dora": False, "use_qlora": False, "learning_rate": 5e-3, "epochs": 1.0, "max_steps": 60,
    "batch_size": 8, "gradient_accumulation_steps": 1, "max_length": 128, "lr_scheduler": "constant",
    "warmup_ratio": 0.0, "logging_steps": 10, "eval_steps": 0, "seed": 0, "beta": 0.1, "loss_type": ["sigmoid"],
}  # fmt: skip


# The reward model's check: the same pairs, LoRA r=8 and the score head, 60 steps of 8 pairs. Held-out pair
# accuracy starts near 0.5 (the untrained head orders pairs by chance) and must reach PASS_ACCURACY.
REWARD_CONFIG = {
    **{key: value for key, value in CONFIG.items() if key not in ("beta", "loss_type")},
    "kind": "reward", "learning_rate": 1e-3, "center_rewards_coefficient": 0.0,
}  # fmt: skip


# KTO's check: the same pairs read one answer at a time (chosen desirable, rejected undesirable), LoRA r=8, 60 steps
# of 8 answers; judged like DPO's, by the implicit reward's held-out preference accuracy and margin.
KTO_CONFIG = {
    **{key: value for key, value in CONFIG.items() if key != "loss_type"},
    "kind": "kto", "desirable_weight": 1.0, "undesirable_weight": 1.0,
}  # fmt: skip


def reward_passed(evaluation: dict[str, Any]) -> bool:
    after = evaluation.get("after", {})
    return bool(after.get("pair_accuracy", 0) >= PASS_ACCURACY and after.get("mean_margin", 0) > 0)


def passed(evaluation: dict[str, Any]) -> bool:
    after = evaluation.get("after", {})
    return bool(after.get("preference_accuracy", 0) >= PASS_ACCURACY and after.get("mean_margin", 0) >= PASS_MARGIN)
