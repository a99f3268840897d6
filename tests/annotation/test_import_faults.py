"""A PostgreSQL connection ended in the middle of a large import on a real worker: the import fails in
words, keeps nothing (no items, no slots, no upload, no temporary file) and the same file then imports fully."""

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from django.conf import settings
from django.core.cache import cache

from accounts.models import AuditEvent
from annotation import services
from annotation.importing import SYNC_IMPORT_BYTES
from annotation.models import ImportBatch, Item, Slot
from tests.annotation.helpers import chat_line, jsonl
from tests.conftest import make_personas
from tests.pg_faults import WORKER_APPLICATION, files_under, terminate_sessions, worker_database_url
from tests.workers import start_worker, stop_worker

LINES = 16_000
END_AT_LINE = 7_000
logger = logging.getLogger(__name__)
DRIVER_WORDS = ("psycopg", "administrator command", "server closed", "OperationalError", "terminating connection")


@pytest.fixture
def worker_log(on_postgres: None, transactional_db: None, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        proc = start_worker("default", "import-faults", output=output, DATABASE_URL=worker_database_url())
        try:
            yield log
        finally:
            stop_worker(proc, timeout=30)


def _wait_for(batch: ImportBatch, statuses: set[str], seconds: float = 300) -> ImportBatch:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = ImportBatch.objects.get(pk=batch.pk)
        if batch.status in statuses:
            return batch
        time.sleep(0.1)
    pytest.fail(f"import #{batch.pk} is still {batch.status} after {seconds} s")


def _upload() -> IO[bytes]:
    data = jsonl(
        *[chat_line(f"Question {n}: how do I move account {n} to the branch in town {n % 97}?") for n in range(LINES)]
    )
    assert len(data) > SYNC_IMPORT_BYTES, "large enough to run on the worker"
    return io.BytesIO(data)


@pytest.mark.worker
def test_it_fails_an_import_in_words_when_its_connection_is_ended_and_imports_the_file_again(
    worker_log: Path,
) -> None:
    personas = make_personas()
    project, lead = personas.project, personas.data_lead
    data_dir = Path(settings.DATA_DIR)
    before = files_under(data_dir)
    batch = services.import_start(
        actor=lead, project=project, upload=_upload(), source_name="big.jsonl", fmt="chat_jsonl"
    )
    assert batch.status == "queued"

    deadline = time.monotonic() + 300
    progress: dict[str, int] = {}
    while (progress.get("lines") or 0) < END_AT_LINE:
        assert time.monotonic() < deadline, f"the import never reached line {END_AT_LINE}: {progress}"
        progress = cache.get(f"import-progress:{batch.pk}") or {}
        time.sleep(0.02)
    assert terminate_sessions() >= 1, f"no session named {WORKER_APPLICATION} to end"
    ended = time.monotonic()
    failed = _wait_for(batch, {"failed", "done", "refused"}, seconds=120)
    seconds_to_failed = time.monotonic() - ended

    assert failed.status == "failed"
    assert failed.failure_reason == (
        "The database connection was lost during the import; nothing was kept. Start it again."
    )
    assert not any(words.lower() in failed.failure_reason.lower() for words in DRIVER_WORDS)
    assert failed.imported_count == 0
    assert failed.lines_read >= END_AT_LINE
    assert not Item.objects.filter(project=project).exists(), "all or nothing"
    assert not Slot.objects.filter(project=project).exists()
    assert AuditEvent.objects.filter(action="import.failed", object_id=str(batch.pk)).exists()
    assert files_under(data_dir) == before, "the upload and every temporary file are gone"
    assert failed.stored_path == ""

    again = services.import_start(
        actor=lead, project=project, upload=_upload(), source_name="big.jsonl", fmt="chat_jsonl"
    )
    again = _wait_for(again, {"failed", "done", "refused"})
    assert again.status == "done", again.failure_reason
    assert again.imported_count == LINES
    assert Item.objects.filter(project=project).count() == LINES
    assert files_under(data_dir) == before

    log = worker_log.read_text()
    assert log.count("administrator command") == 1, "the driver's text is logged once, for operators"
    logger.info(  # the figures for the README: pytest -o log_cli=true --log-cli-level=INFO
        "import of %s lines: session ended at line %s (%s rows staged), failed %.2f s later, after line %s",
        f"{LINES:,}",
        f"{progress['lines']:,}",
        f"{progress['lines']:,}",
        seconds_to_failed,
        f"{failed.lines_read:,}",
    )
