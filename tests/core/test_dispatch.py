"""With the broker unreachable, work that was recorded as queued fails with the reason instead of waiting
forever, the service that started it returns normally, and the outage is logged once, not once per send.
The broker is a real unreachable address."""

import io
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts.models import AuditEvent
from annotation import importing
from annotation import services as annotation_services
from annotation.models import ImportBatch, ImportStatus
from core.dispatch import broker_health, reach_broker, send_on_commit
from enclave.celery import app
from enclave.tasks import health_check_task
from releases import services as release_services
from releases.models import Release, ReleaseState
from tests.annotation.helpers import chat_line, jsonl
from tests.conftest import Personas
from tests.training.helpers import preference_release, quick_config, ready_model
from training import services as training_services
from training.models import BaseModel, BaseModelState, JobState, TrainingJob

# Real commits: the refusal is recorded when the service's own transaction commits, before it returns.
pytestmark = pytest.mark.django_db(transaction=True)

DOWN = "redis://127.0.0.1:1/{}"  # nothing listens on port 1
_down_urls = itertools.count()


@pytest.fixture
def broker_down() -> Iterator[None]:
    """Point the app's publishing at an address where no broker listens, then put the real one back. The
    real connection and producer pools are set aside, not closed: kombu keeps them in a global registry, where
    the closed pool of the unreachable address stays too (so each use takes an address of its own)."""
    saved_conf = app.conf.broker_url, app.conf.broker_transport_options
    saved_pools = app._pool, app.amqp._producer_pool  # type: ignore[attr-defined]
    app._pool = app.amqp._producer_pool = None  # type: ignore[attr-defined]
    app.conf.update(broker_url=DOWN.format(next(_down_urls)), broker_transport_options={})
    try:
        yield
    finally:
        if app._pool is not None:  # type: ignore[attr-defined]
            app._pool.force_close_all()  # type: ignore[attr-defined]
        app.conf.update(broker_url=saved_conf[0], broker_transport_options=saved_conf[1])
        app._pool, app.amqp._producer_pool = saved_pools  # type: ignore[attr-defined]


def test_it_fails_an_import_that_cannot_reach_a_worker_with_the_reason(
    personas: Personas, broker_down: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "SYNC_IMPORT_BYTES", 100)  # to a worker
    batch = annotation_services.import_start(
        actor=personas.data_lead, project=personas.project, source_name="big.jsonl", fmt="chat_jsonl",
        upload=io.BytesIO(jsonl(*[chat_line(f"Question {n}?") for n in range(20)])),
    )  # fmt: skip
    assert batch.status == ImportStatus.FAILED  # what the caller (page, API) gets back is already the outcome
    batch = ImportBatch.objects.get(pk=batch.pk)
    assert batch.status == ImportStatus.FAILED
    assert "could not be sent to a worker" in batch.failure_reason
    assert batch.stored_path == ""  # the upload is not kept for a retry that never comes
    assert AuditEvent.objects.filter(action="import.failed", object_id=str(batch.pk)).exists()


def test_it_fails_a_release_whose_build_cannot_be_sent_with_the_reason(personas: Personas, broker_down: None) -> None:
    release = release_services.release_create(
        actor=personas.data_lead, project=personas.project, name="r", recipe={"kind": "preference"}
    )
    assert release.state == ReleaseState.FAILED
    release = Release.objects.get(pk=release.pk)
    assert release.state == ReleaseState.FAILED
    assert "could not be sent to a worker" in release.failure_reason
    assert AuditEvent.objects.filter(action="release.fail", object_id=str(release.pk)).exists()


def test_it_fails_a_model_check_or_a_training_job_that_cannot_be_sent_with_the_reason(
    personas: Personas, tiny_model_dir: Path, request: pytest.FixtureRequest
) -> None:
    prefs = preference_release(personas.project, personas.data_lead, personas.reviewer)
    ready = ready_model(personas.staff, tiny_model_dir)
    request.getfixturevalue("broker_down")
    model = training_services.base_model_register(
        actor=personas.staff, name="another", path=str(tiny_model_dir), description=""
    )
    assert model.state == BaseModelState.INVALID
    model = BaseModel.objects.get(pk=model.pk)
    assert model.state == BaseModelState.INVALID
    assert "could not be sent to a worker" in model.failure_reason
    job = training_services.training_job_start(
        actor=personas.project_admin, project=personas.project, kind="dpo", release=prefs, base_model=ready,
        config=quick_config("dpo"),
    )  # fmt: skip
    assert job.state == JobState.FAILED
    job = TrainingJob.objects.get(pk=job.pk)
    assert job.state == JobState.FAILED
    assert "could not be sent to a worker" in job.failure_reason
    assert AuditEvent.objects.filter(action="training.job_fail", object_id=str(job.pk)).exists()


def test_it_leaves_the_commit_and_later_hooks_alone_when_a_refusal_cannot_be_recorded() -> None:
    from django.db import transaction

    def refuse() -> None:
        raise ConnectionError("broker down")

    def record(reason: str) -> None:
        seen.append(reason)
        raise ConnectionError("cache down too")

    seen: list[str] = []
    with transaction.atomic():
        send_on_commit(refuse, what="a test task", on_refused=record)
        transaction.on_commit(lambda: seen.append("later hook"))
    assert seen[0].startswith("The task could not be sent to a worker (ConnectionError: broker down)")
    assert seen[1] == "later hook"


def test_it_logs_an_outage_once_without_a_traceback_and_its_end_once(
    broker_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    from django.core.cache import cache
    from django.db import transaction

    broker_health.answered()  # whatever an earlier test in this process left
    caplog.clear()
    reasons: list[str] = []
    with caplog.at_level(logging.INFO, logger="core.dispatch"):
        for n in range(3):
            with transaction.atomic():
                send = lambda: health_check_task.apply_async(ignore_result=True)  # noqa: E731
                send_on_commit(send, what=f"check {n}", on_refused=reasons.append)
        assert len(reasons) == 3
        assert all(r.startswith("The task could not be sent to a worker (OperationalError: ") for r in reasons)
        assert broker_health.down
        reach_broker(lambda: cache.get("anything"))  # the cache (the test's real Redis) answers
    lines = [(record.levelname, record.getMessage(), record.exc_info) for record in caplog.records]
    assert len(lines) == 2, lines
    (level, gone, trace), (_, back, _) = lines
    assert level == "WARNING"
    assert gone.startswith("Task broker and cache unreachable from process ")
    assert "OperationalError" in gone
    assert trace is None
    assert back.startswith("Task broker and cache reachable again from process ")
    assert back.endswith("; 3 calls refused meanwhile.")
    assert not broker_health.down


def test_it_takes_calls_in_flight_at_an_outages_edges_for_no_news(caplog: pytest.LogCaptureFixture) -> None:
    from core.dispatch import BrokerHealth

    health = BrokerHealth()
    with caplog.at_level(logging.INFO, logger="core.dispatch"):
        before_the_outage = time.monotonic()
        health.refused(ConnectionError("closed by server"), started=time.monotonic())
        health.answered(started=before_the_outage)  # in flight on another thread when Redis went: no news
        assert health.down
        health.refused(ConnectionError("refused"), started=time.monotonic())
        before_it_was_back = time.monotonic()
        health.answered(started=time.monotonic())
        assert not health.down
        health.refused(ConnectionError("refused"), started=before_it_was_back)  # a straggler of the outage
        assert not health.down
        health.refused(ConnectionError("refused again"), started=time.monotonic())  # a new outage
        assert health.down
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(" from process")[0] for line in lines] == [
        "Task broker and cache unreachable",
        "Task broker and cache reachable again",
        "Task broker and cache unreachable",
    ]
    assert lines[1].endswith("; 2 calls refused meanwhile.")
