"""Agreement follows the judgements: a burst of submits ends with a run on a real worker that counts the last
one, the answer says what it counts and when, and a recompute can be asked for through the API. With the
cache away, judgements are stored and the pages answer, logging the outage once (tests/preferences/
test_redis_fault.py restarts a real Redis under load)."""

import logging
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from django.test import Client, override_settings

from accounts.models import AuditEvent
from annotation import services as annotation_services
from enclave.tasks import health_check_task
from preferences import services
from preferences.models import AgreementSnapshot, Judgement
from tests.conftest import ClientFor, Personas, make_personas
from tests.core.test_dispatch import broker_down  # noqa: F401 - the fixture
from tests.preferences.helpers import comparison_line, import_comparisons, make_comparisons
from tests.workers import start_worker, stop_worker


def _judge_all(personas: Personas, count: int, prefix: str) -> None:
    """``count`` comparisons judged one after another by the annotator and the reviewer, as fast as they go."""
    lines = [comparison_line(f"{prefix} question {n}?", f"Answer {n}.0", f"Answer {n}.1") for n in range(count)]
    assert import_comparisons(personas.project, personas.data_lead, *lines).status == "done"
    for user in (personas.annotator, personas.reviewer):
        for n in range(count):
            item = services.comparison_next(user=user, project=personas.project)
            assert item is not None
            services.judgement_submit(
                user=user, item=item, shown={"choice": "A" if n % 3 else "B"}, rationale="", time_spent_ms=9000,
                idempotency_key=f"{prefix}-{user.username}-{n}",
            )  # fmt: skip


def _poll(client: Client, path: str, until: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if until(body):
            return body
        time.sleep(0.25)
    pytest.fail(f"agreement never got there; last answer: {body}")


@pytest.fixture
def default_worker(transactional_db: None, tmp_path: Any) -> Iterator[subprocess.Popen[str]]:
    log = (tmp_path / "worker.log").open("w")
    proc = start_worker("default", "pytest-agreement", output=log)
    health_check_task.delay().get(timeout=90)  # the worker consumes: the burst below meets a running worker
    yield proc
    stop_worker(proc, timeout=20)


@pytest.mark.worker
def test_it_counts_the_last_judgement_of_a_burst_without_a_recompute(
    default_worker: subprocess.Popen[str], client_for: ClientFor
) -> None:
    personas = make_personas()
    annotation_services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=2, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/agreement/"
    _judge_all(personas, 15, "first")
    body = _poll(lead, path, lambda b: b["judgements"] == 30 and b["pending"] is False)
    assert body["figures"]["alpha_choice_nominal"] is not None
    # A second burst, while the figures are fresh: they follow again, to its last judgement.
    _judge_all(personas, 10, "second")
    body = _poll(lead, path, lambda b: b["judgements"] == 50 and b["pending"] is False)
    latest = AgreementSnapshot.objects.filter(project=personas.project).order_by("-computed_at").first()
    assert latest is not None
    assert latest.judgements == 50
    assert datetime.fromisoformat(body["computed_at"]) == latest.computed_at
    assert not AuditEvent.objects.filter(action="agreement.recompute").exists(), "nobody asked for a recompute"

    # Asked for through the API: 202 at once, then the route it names answers with a later computation.
    answer = lead.post(f"{path}recompute/")
    assert answer.status_code == 202, answer.content
    queued = answer.json()
    assert queued["status"] == "queued"
    assert queued["status_url"] == f"http://testserver{path}"
    requested_at = datetime.fromisoformat(queued["requested_at"])
    body = _poll(
        lead,
        path,
        lambda b: b["pending"] is False and datetime.fromisoformat(b["computed_at"]) > requested_at,
    )
    assert body["judgements"] == 50
    assert AuditEvent.objects.filter(action="agreement.recompute", actor=personas.data_lead).count() == 1


def test_it_says_in_the_agreement_answer_what_it_counts_and_whether_a_run_is_under_way(
    personas: Personas, client_for: ClientFor
) -> None:
    reviewer = client_for(personas.reviewer)
    path = f"/api/v1/projects/{personas.project.pk}/agreement/"
    assert reviewer.get(path).json() == {
        "computed_at": None,
        "judgements": 0,
        "pending": False,
        "figures": {},
        "reward_models": [],
    }
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    services.comparison_next(user=personas.annotator, project=personas.project)
    judgement = services.judgement_submit(
        user=personas.annotator, item=item, shown={"choice": "tie"}, rationale="", time_spent_ms=1, idempotency_key="a"
    )
    # Asking is for data leads and up (a reviewer reads the figures but gets 404 here, and no button);
    # the run is queued (no worker here).
    assert reviewer.post(f"{path}recompute/").status_code == 404
    assert "Recompute now" not in reviewer.get(f"/projects/{personas.project.pk}/quality/").content.decode()
    answer = client_for(personas.data_lead).post(f"{path}recompute/")
    assert answer.status_code == 202
    assert reviewer.get(path).json()["pending"] is True
    page = reviewer.get(f"/projects/{personas.project.pk}/quality/").content.decode()
    assert "Not computed yet; a worker recomputes it after judgements arrive (under way now)." in page
    event = AuditEvent.objects.get(action="agreement.recompute")
    assert (event.actor, event.project) == (personas.data_lead, personas.project)

    # What the worker runs for it: the figures count the judgement, and the mark is gone.
    snapshot = services.agreement_recompute_queued(project_id=personas.project.pk)
    assert snapshot is not None
    assert (snapshot.judgements, snapshot.last_judgement_id) == (1, judgement.pk)
    body = reviewer.get(path).json()
    assert body["judgements"] == 1
    assert body["pending"] is False
    page = reviewer.get(f"/projects/{personas.project.pk}/quality/").content.decode()
    assert " over 1 judgements (gold items left out)" in page
    assert "under way" not in page
    assert datetime.fromisoformat(body["computed_at"]) >= datetime.fromisoformat(answer.json()["requested_at"])


@pytest.mark.usefixtures("broker_down")
def test_it_answers_503_and_records_nothing_for_a_recompute_the_task_queue_refuses(
    personas: Personas, client_for: ClientFor
) -> None:
    lead = client_for(personas.data_lead)
    path = f"/api/v1/projects/{personas.project.pk}/agreement/"
    answer = lead.post(f"{path}recompute/")
    assert answer.status_code == 503
    assert "task queue is not answering" in answer.json()["detail"]
    assert lead.get(path).json()["pending"] is False, "the mark of a run never sent is dropped"
    assert not AuditEvent.objects.filter(action="agreement.recompute").exists()
    page = lead.post(f"/projects/{personas.project.pk}/quality/refresh/", follow=True)
    assert "task queue is not answering" in page.content.decode()


CACHE_AWAY = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


def test_it_stores_judgements_and_answers_the_pages_with_the_cache_away(
    transactional_db: None, client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    personas = make_personas()
    items = make_comparisons(personas.project, personas.data_lead, 3)
    batch = items[0].batch
    assert batch is not None
    lead = client_for(personas.data_lead)
    with override_settings(CACHES=CACHE_AWAY), caplog.at_level(logging.INFO):
        for n in range(3):  # each asks for an agreement run after its commit: the cache refuses
            item = services.comparison_next(user=personas.annotator, project=personas.project)
            assert item is not None
            services.judgement_submit(
                user=personas.annotator, item=item, shown={"choice": "A"}, rationale="", time_spent_ms=9000,
                idempotency_key=f"away-{n}",
            )  # fmt: skip
        agreement = lead.get(f"/api/v1/projects/{personas.project.pk}/agreement/")
        assert agreement.status_code == 200
        assert agreement.json()["pending"] is None, "unknown while the cache is away"
        assert lead.get(f"/projects/{personas.project.pk}/quality/").status_code == 200
        assert lead.get(f"/projects/{personas.project.pk}/imports/{batch.pk}/").status_code == 200
    assert Judgement.objects.filter(item__project=personas.project).count() == 3
    assert not [r for r in caplog.records if r.exc_info], "no traceback"
    gone = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(gone) <= 1, "logged once per outage (none if an earlier test left this process's broker down)"
