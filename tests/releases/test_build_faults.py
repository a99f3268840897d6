"""A PostgreSQL connection ended in the middle of a release build on a real worker: the build fails in
words, leaves no release files, item rows or temporary files, and a new build of the same recipe gives the
same release hash as an uninterrupted one. And a failed build's files are deleted from an S3-compatible
store even when none of them was recorded yet."""

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection
from django.test import override_settings

from accounts.models import AuditEvent
from annotation.models import ImportBatch, Item
from core.db import lost_connection_reason
from core.storage import artifact_storage
from preferences.models import Judgement
from preferences.results import display_order
from releases import artifacts, services
from releases.models import Release, ReleaseFile, ReleaseItem
from tests.conftest import Personas, make_personas
from tests.pg_faults import WORKER_APPLICATION, files_under, terminate_sessions, worker_database_url
from tests.releases.test_s3_store import s3_bucket as s3_bucket
from tests.workers import start_worker, stop_worker

logger = logging.getLogger(__name__)
ITEMS = 8000
DRIVER_WORDS = ("psycopg", "administrator command", "server closed", "OperationalError", "terminating connection")


@contextmanager
def _worker(log: Path, **env: str) -> Iterator[Path]:
    with log.open("w") as output:
        proc = start_worker("default", "build-faults", output=output, DATABASE_URL=worker_database_url(), **env)
        try:
            yield log
        finally:
            stop_worker(proc, timeout=30)


@pytest.fixture
def worker_log(on_postgres: None, transactional_db: None, tmp_path: Path) -> Iterator[Path]:
    with _worker(tmp_path / "worker.log") as log:
        yield log


def _judged(p: Personas, count: int) -> None:
    """``count`` comparisons of two candidates, each judged by two annotators (rows written directly: the
    build's input, made fast). Prompts are random words, so no two are near copies."""
    rng = random.Random(22)
    words = [
        f"{a}{b}{c}" for a in ("ka", "lo", "mi", "ne", "su", "ta") for b in "aeiou" for c in ("n", "r", "s", "t", "l")
    ]
    batch = ImportBatch.objects.create(
        project=p.project, uploaded_by=p.data_lead, source_name="faults.jsonl", fmt="comparison_jsonl",
        sha256="", size_bytes=0, status="done", lines_read=count, imported_count=count,
    )  # fmt: skip
    items = []
    for n in range(count):
        prompt = " ".join(rng.choice(words) for _ in range(14)) + f" {n}?"
        candidates = [{"content": f"Answer {c} to {n}: " + " ".join(rng.choices(words, k=8))} for c in "ab"]
        items.append(
            Item(
                project=p.project,
                batch=batch,
                kind="comparison",
                messages=[{"role": "user", "content": prompt}],
                candidates=candidates,
                content_hash=hashlib.sha256(prompt.encode()).hexdigest(),
            )
        )
    items = Item.objects.bulk_create(items, batch_size=2000)
    judgements = []
    for n, item in enumerate(items):
        for user, strength in ((p.annotator, 2), (p.reviewer, 3)):
            seed, order = display_order(user, item)
            result = {"winner": n % 2, "strength": strength}
            judgements.append(
                Judgement(
                    item=item,
                    annotator=user,
                    mode="pairwise",
                    seed=seed,
                    displayed_order=order,
                    result=result,
                    displayed_result=result,
                    time_spent_ms=5000,
                    idempotency_key=f"fault-{user.pk}-{item.pk}",
                )
            )
    Judgement.objects.bulk_create(judgements, batch_size=4000)


def _wait_until_ended(release: Release, seconds: float = 300) -> Release:
    """The release once its build has ended, and the worker has removed its scratch directory (just after)."""
    deadline = time.monotonic() + seconds
    scratch = Path(settings.DATA_DIR) / "tmp"
    while time.monotonic() < deadline:
        release = Release.objects.get(pk=release.pk)
        if release.state not in {"queued", "building"} and not any(scratch.glob(f"release-{release.pk}-*")):
            return release
        time.sleep(0.1)
    pytest.fail(f"release #{release.pk} is still {release.state} after {seconds} s")


def _stored(release: Release) -> set[str]:
    root = Path(settings.MEDIA_ROOT) / release.storage_prefix
    return files_under(root) if root.exists() else set()


@pytest.mark.worker
def test_it_fails_a_build_in_words_when_its_connection_is_ended_and_builds_the_same_hash_again(
    worker_log: Path,
) -> None:
    p = make_personas()
    _judged(p, ITEMS)
    recipe: dict[str, Any] = {"kind": "preference", "eval_fraction": 0.1}
    began = time.monotonic()
    first = _wait_until_ended(services.release_create(actor=p.data_lead, project=p.project, name="rel", recipe=recipe))
    build_seconds = time.monotonic() - began
    assert first.state == "built", first.failure_reason
    data_dir = Path(settings.DATA_DIR)
    before = files_under(data_dir)

    second = services.release_rebuild(actor=p.data_lead, release=first)
    deadline = time.monotonic() + 300
    while not (second.progress_note or "").startswith("writing"):
        assert time.monotonic() < deadline, f"the build never started writing: {second.state}"
        second = Release.objects.get(pk=second.pk)
        assert second.state in {"queued", "building"}, second.failure_reason
        time.sleep(0.02)
    rows_written = ReleaseItem.objects.filter(release=second).count()
    progress = second.progress
    assert terminate_sessions() >= 1, f"no session named {WORKER_APPLICATION} to end"
    ended = time.monotonic()
    failed = _wait_until_ended(second, seconds=120)
    seconds_to_failed = time.monotonic() - ended

    assert failed.state == "failed"
    assert (
        failed.failure_reason == "The database connection was lost during the build; nothing was kept. Start it again."
    )
    assert not any(words.lower() in failed.failure_reason.lower() for words in DRIVER_WORDS)
    assert rows_written > 0, "terminated half-way: item rows had been written"
    assert not ReleaseItem.objects.filter(release=failed).exists(), "no half release"
    assert not ReleaseFile.objects.filter(release=failed).exists()
    assert not failed.hash
    assert failed.built_at is None
    assert _stored(failed) == set(), "no file of the failed build in the artifact store"
    assert files_under(data_dir) == before, "no temporary file left in the data directory"
    assert AuditEvent.objects.filter(action="release.fail", object_id=str(failed.pk)).exists()

    third = _wait_until_ended(services.release_rebuild(actor=p.data_lead, release=failed))
    assert third.state == "built", third.failure_reason
    assert third.hash == first.hash, "a new build of the same recipe gives the uninterrupted build's hash"
    assert services.release_verify(release=third) == []
    assert worker_log.read_text().count("administrator command") == 1, "the driver's text is logged once"
    logger.info(  # the figures for the README: pytest -o log_cli=true --log-cli-level=INFO
        "build of %s items (%.1f s whole): session ended at %s%%, %s item rows written; failed %.2f s later",
        f"{ITEMS:,}", build_seconds, progress, f"{rows_written:,}", seconds_to_failed,
    )  # fmt: skip


@pytest.mark.django_db
def test_it_deletes_a_failed_builds_unrecorded_files_from_an_s3_store(
    personas: Personas, s3_bucket: dict[str, Any], settings: Any
) -> None:
    """A build that stored its files and then lost its connection before recording them: the failure
    deletes them all, found by their prefix."""
    storages = {**settings.STORAGES, "artifacts": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_bucket}}
    made = {
        "project": personas.project,
        "kind": "preference",
        "name": "rel",
        "recipe": {},
        "created_by": personas.data_lead,
    }
    release = Release.objects.create(version=1, **made)
    other = Release.objects.create(version=2, **made)
    with override_settings(STORAGES=storages):
        storage = artifact_storage()
        for name in ("manifest.json", "datasheet.md", "jsonl/train.jsonl", "parquet/eval.parquet"):
            storage.save(f"{release.storage_prefix}/{name}", ContentFile(b"rows"))
        storage.save(f"{other.storage_prefix}/manifest.json", ContentFile(b"kept"))
        assert not ReleaseFile.objects.filter(release=release).exists()
        artifacts.delete_stored(release)
        assert storage.listdir(release.storage_prefix) == ([], [])
        assert storage.exists(f"{other.storage_prefix}/manifest.json"), "another release's files stay"


@pytest.fixture(params=["filesystem", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Callable[[Release], set[str]]]]:
    """The artifact store for a worker: its environment, and how the test lists a release's stored files."""
    if request.param == "filesystem":
        yield {}, _stored
        return
    bucket = request.getfixturevalue("s3_bucket")
    env = {
        "ARTIFACT_S3_BUCKET": bucket["bucket_name"], "ARTIFACT_S3_ENDPOINT_URL": bucket["endpoint_url"],
        "ARTIFACT_S3_ACCESS_KEY": bucket["access_key"], "ARTIFACT_S3_SECRET_KEY": bucket["secret_key"],
        "ARTIFACT_S3_REGION": bucket["region_name"],
    }  # fmt: skip
    storages = {**settings.STORAGES, "artifacts": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": bucket}}

    def stored(release: Release) -> set[str]:
        with override_settings(STORAGES=storages):
            return set(artifacts.stored_under(artifact_storage(), release.storage_prefix))

    yield env, stored


@pytest.mark.worker
def test_it_deletes_the_stored_files_when_the_connection_is_lost_before_they_are_recorded(
    on_postgres: None,
    transactional_db: None,
    tmp_path: Path,
    store: tuple[dict[str, str], Callable[[Release], set[str]]],
) -> None:
    """The worst moment: every file is in the artifact store and the transaction that records them waits (on a
    lock this test holds) when the session is ended. Nothing of the build remains, and it builds again."""
    env, stored = store
    p = make_personas()
    _judged(p, 300)
    recipe: dict[str, Any] = {"kind": "preference", "eval_fraction": 0.1}
    with _worker(tmp_path / "worker.log", **env) as log:
        first = _wait_until_ended(
            services.release_create(actor=p.data_lead, project=p.project, name="rel", recipe=recipe)
        )
        assert first.state == "built", first.failure_reason
        before = files_under(Path(settings.DATA_DIR))
        db = connection.settings_dict
        with psycopg.connect(
            host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
        ) as holder:
            holder.execute(f"LOCK TABLE {ReleaseFile._meta.db_table} IN SHARE MODE")  # no file is recorded
            second = services.release_rebuild(actor=p.data_lead, release=first)
            deadline = time.monotonic() + 120
            while not _waits_on_a_lock():
                assert time.monotonic() < deadline, "the build never reached the transaction that records its files"
                time.sleep(0.05)
            in_store = stored(second)
            assert terminate_sessions() >= 1
            ended = time.monotonic()
            holder.rollback()
        failed = _wait_until_ended(second, seconds=120)
        seconds_to_failed = time.monotonic() - ended
        assert failed.state == "failed"
        assert failed.failure_reason == lost_connection_reason("build")
        assert len(in_store) > 10, "every file had been stored"
        assert stored(failed) == set(), "the stored files are deleted"
        assert not ReleaseFile.objects.filter(release=failed).exists()
        assert not ReleaseItem.objects.filter(release=failed).exists()
        assert files_under(Path(settings.DATA_DIR)) == before

        third = _wait_until_ended(services.release_rebuild(actor=p.data_lead, release=failed))
        assert third.state == "built", third.failure_reason
        assert third.hash == first.hash
        assert len(stored(third)) == len(in_store)
        assert log.read_text().count("administrator command") == 1
    logger.info(  # the figures for the README
        "build on %s: session ended with %s files stored, not recorded; failed %.2f s later, files deleted",
        "S3" if env else "the filesystem", len(in_store), seconds_to_failed,
    )  # fmt: skip


def _waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"
            " AND wait_event_type = 'Lock'",
            [WORKER_APPLICATION],
        )
        row = cursor.fetchone()
    return bool(row and row[0])
