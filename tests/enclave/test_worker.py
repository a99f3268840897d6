"""A real Celery worker process consumes the health task through the configured broker (Redis in CI,
the embedded filesystem broker otherwise) and answers from the test database."""

import os
import signal
import subprocess

import pytest
from django.conf import settings
from django.db import connection

from enclave.celery import app
from enclave.tasks import health_check_task
from training.tasks import training_job_run_task


@pytest.mark.worker
def test_it_runs_the_health_task_on_a_worker(worker: subprocess.Popen[str]) -> None:
    result = health_check_task.delay()
    try:
        answer = result.get(timeout=90)
    except Exception:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=20)[0]
        pytest.fail(f"the worker did not answer; its output:\n{output[-4000:]}")
    assert answer["status"] == "ok"
    assert answer["database"] == connection.vendor
    if os.environ.get("CI") == "true":
        assert settings.CELERY_BROKER_URL.startswith("redis://")


def test_it_routes_training_tasks_to_the_gpu_queue() -> None:
    router = app.amqp.router
    assert router.route({}, "training.training_job_run")["queue"].name == "gpu"
    assert router.route({}, "training.base_model_validate")["queue"].name == "gpu"
    assert router.route({}, "enclave.health_check")["queue"].name == "default"
    assert app.conf.task_acks_late is True
    assert app.conf.task_always_eager is False
    assert training_job_run_task.acks_late is False  # acknowledged on receipt (training/tasks.py)


def test_it_fails_loudly_to_publish_when_the_broker_is_down() -> None:
    """With the broker unreachable, .delay() raises within seconds instead of hanging or dropping the task."""
    from kombu.exceptions import OperationalError

    down = app.connection_for_write("redis://127.0.0.1:1/0")
    with pytest.raises(OperationalError):
        health_check_task.apply_async(connection=down)  # type: ignore[call-arg]


@pytest.mark.worker
def test_it_runs_a_large_import_on_the_worker(worker: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import time

    from annotation import importing, services
    from annotation.models import ImportBatch
    from tests.annotation.helpers import chat_line, jsonl
    from tests.conftest import make_personas

    personas = make_personas()
    monkeypatch.setattr(importing, "SYNC_IMPORT_BYTES", 100)  # anything above 100 bytes goes to a worker
    lines = [chat_line(f"Question {n} from customer{n}@example.com?") for n in range(300)]
    batch = services.import_start(
        actor=personas.data_lead, project=personas.project, upload=io.BytesIO(jsonl(*lines)),
        source_name="big.jsonl", fmt="chat_jsonl",
    )  # fmt: skip
    assert batch.status == "queued"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        batch = ImportBatch.objects.get(pk=batch.pk)
        if batch.status not in {"queued", "running"}:
            break
        time.sleep(0.3)
    assert batch.status == "done", batch.failure_reason or batch.status
    assert batch.imported_count == 300
    assert batch.scrub_counts == {"EMAIL": 300}


@pytest.mark.worker
def test_it_schedules_one_agreement_run_on_the_worker_for_judgements(worker: subprocess.Popen[str]) -> None:
    """Judgements commit, schedule the agreement task once per burst, and a worker stores the figures."""
    import time

    from annotation import services as annotation_services
    from preferences import services
    from preferences.models import AgreementSnapshot
    from tests.conftest import make_personas
    from tests.preferences.helpers import letter_of, make_comparisons

    personas = make_personas()
    annotation_services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=2, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    items = make_comparisons(personas.project, personas.data_lead, 3)
    for user, winners in [(personas.annotator, [0, 1, 0]), (personas.reviewer, [0, 1, 1])]:
        for n, winner in enumerate(winners):
            item = services.comparison_next(user=user, project=personas.project)
            assert item == items[n]
            services.judgement_submit(
                user=user, item=item, shown={"choice": letter_of(user, item, winner)}, rationale="",
                time_spent_ms=5000, idempotency_key=f"w-{user.pk}-{n}",
            )  # fmt: skip
    deadline = time.monotonic() + 90
    snapshot = None
    while time.monotonic() < deadline and snapshot is None:
        snapshot = AgreementSnapshot.objects.filter(project=personas.project, judgements=6).first()
        time.sleep(0.3)
    if snapshot is None:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=20)[0]
        pytest.fail(f"no agreement snapshot over 6 judgements; worker output:\n{output[-4000:]}")
    figures = snapshot.figures
    assert figures["cohens_kappa"][0]["shared"] == 3
    assert figures["alpha_choice_nominal"] is not None
    # Six judgements arrived in a burst: far fewer runs than judgements (the pending mark debounces them).
    assert AgreementSnapshot.objects.filter(project=personas.project).count() < 6


@pytest.mark.worker
def test_it_builds_a_release_on_the_worker(worker: subprocess.Popen[str]) -> None:
    """Defining a release queues its build; a worker builds, stores and freezes it."""
    import time

    from releases import services
    from releases.models import Release
    from tests.conftest import make_personas
    from tests.releases.helpers import comparisons, judge

    personas = make_personas()
    for n, item in enumerate(
        comparisons(personas.project, personas.data_lead, [f"Fee question {n}" for n in "abcdef"])
    ):
        judge(item, personas.reviewer, {"winner": n % 2, "strength": 2})
    release = services.release_create(
        actor=personas.data_lead, project=personas.project, name="worker", recipe={"kind": "preference"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        release = Release.objects.get(pk=release.pk)
        if release.state in {"built", "failed"}:
            break
        time.sleep(0.3)
    if release.state != "built":
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=20)[0]
        pytest.fail(f"release is {release.state} ({release.failure_reason}); worker output:\n{output[-4000:]}")
    assert len(release.hash) == 64
    assert services.release_verify(release=release) == []
