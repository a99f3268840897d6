"""Builders for round tests: judging a round's pairs through the comparison API as experts do, waiting for a
round to reach a state, and a round whose generation run has answered (rows written as a finished run writes
them, for the service tests of pairing)."""

import random
import time
import uuid
from pathlib import Path
from typing import Any

from django.test import Client

from accounts.models import User
from annotation.models import Item
from rounds.models import Round
from tests.preferences.helpers import letter_of


def judge_round(round_: Round, users: list[User], *, prefer: str = "shorter") -> int:
    """Every comparison of the round's project that each user is handed, judged through the API (the answer
    ``prefer`` says: the shorter one, or at random). Returns how many judgements were sent."""
    sent = 0
    rng = random.Random(round_.pk)
    for user in users:
        client = Client()
        client.force_login(user)
        while True:
            response = client.post(f"/api/v1/projects/{round_.project_id}/comparisons/next/")
            if response.status_code == 204:
                break
            assert response.status_code == 200, response.content
            item = Item.objects.get(pk=response.json()["id"])
            texts = [c["content"] for c in item.candidates]
            pick = min(range(len(texts)), key=lambda i: len(texts[i])) if prefer == "shorter" else rng.randrange(2)
            body = {"choice": letter_of(user, item, pick), "strength": 2, "idempotency_key": uuid.uuid4().hex,
                    "time_spent_ms": 15000}  # fmt: skip
            answer = client.post(
                f"/api/v1/projects/{round_.project_id}/comparisons/{item.pk}/judgements/",
                body,
                content_type="application/json",
            )
            assert answer.status_code == 201, answer.content
            sent += 1
    return sent


def wait_for_round(round_: Round, states: set[str], log: Path | None = None, timeout: float = 240) -> Round:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        round_.refresh_from_db()
        if round_.state in states:
            return round_
        if round_.state in {"failed", "cancelled"}:
            break
        time.sleep(0.5)
    tail = log.read_text()[-5000:] if log is not None and log.exists() else ""
    raise AssertionError(f"round {round_.number} is {round_.state}: {round_.failure_reason}\n{tail}")


def prompt_file(prompts: list[str]) -> Any:
    import io
    import json

    return io.BytesIO(
        "".join(json.dumps({"messages": [{"role": "user", "content": p}]}) + "\n" for p in prompts).encode()
    )
