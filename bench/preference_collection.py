"""Preference collection over HTTP: "next comparison" and "submit judgement" latency, throughput of 32
annotators with the lost, duplicated and double-assigned judgements counted, and the ranking page's bytes.

For each size, a throwaway PostgreSQL database (Django's test-database machinery, named
``<name>_bench_preferences``) is migrated and seeded with that many comparisons of three ~300-word
candidates. gunicorn is started against it as in production (``docker-compose.yml``: production settings,
3 workers of 4 threads, behind a TLS proxy that sets X-Forwarded-Proto) and driven over keep-alive HTTP on
loopback through the REST API, with API tokens, from this process, which shares the machine's cores with
the server and the database. The 32 annotators run twice: first as the comparison page works (each submit
answers with the next comparison: one request a judgement), then as a script calling "next" and "submit"
separately (two). The database is dropped afterwards. PostgreSQL and Redis are required; the
Redis database is emptied.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/preference_collection.py --comparisons 10000 50000 1000000
    ... bench/preference_collection.py --quick        (a smoke run: 2,000 comparisons, short phases, about a minute)

Seeding goes around the importer's PII scrubber, which would take hours for 1M comparisons: the generated
lines go through the importer's own parser and content hash and reach the database by COPY, with the rows
and slots the importer would write (gold items get no slots). The texts hold no PII, and before the
measurements a sample of the same lines is imported through ``import_start`` (in a transaction that is
rolled back) and compared column by column with the seeded rows.
"""

import argparse
import hashlib
import http.client
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"

from _common import ROOT, collect_static, print_columns, size_label, throwaway_database
from faker.providers.lorem.en_US import Provider as LoremProvider

# As docker-compose.yml runs the web service (the Dockerfile's CMD says the same).
GUNICORN_WORKERS = 3
GUNICORN_THREADS = 4
# How the crowd's clients ask: as a script calling the two endpoints, or as the comparison page does (the
# submit answers with the next comparison).
TWO_CALLS = "next, then submit"
AND_NEXT = "submit and next"
CROWDS = {"and-next": AND_NEXT, "two-calls": TWO_CALLS}
PASSWORD = "bench-page-password-2718"  # noqa: S105 - a throwaway account in a throwaway database
MODELS = (
    {"model": "llama-3.1-8b-instruct", "version": "2024-07", "decoding": {"temperature": 0.7, "top_p": 0.9}},
    {"model": "mistral-7b-bank-sft", "version": "v3", "adapter": "sft-lora-r16", "decoding": {"temperature": 0.7}},
    {"model": "qwen2.5-7b-instruct", "version": "2024-09", "decoding": {"temperature": 1.0, "top_p": 0.95}},
)

# --- Texts ------------------------------------------------------------------------------------------------

_OPENERS = [
    "In short", "First of all", "As a rule", "In most cases", "For example", "On the other hand", "In practice",
    "To be precise", "As things stand", "Generally speaking", "Before anything else", "Just as important",
    "Where possible", "In your situation", "By the same token", "As a next step", "To avoid surprises",
    "For your peace of mind", "Once that is done", "If you prefer", "Under the current terms", "Equally",
    "From what you describe", "To keep things simple", "Most importantly", "Unlike before", "Even so",
]  # fmt: skip
_SUBJECTS = [
    "the bank", "your current account", "a standing order", "the savings account", "the mobile app",
    "a direct debit", "the branch team", "your arranged overdraft", "the debit card", "the monthly statement",
    "an international transfer", "the mortgage offer", "the fraud team", "a joint account", "the interest rate",
    "the complaints team", "online banking", "a credit card payment", "the account holder", "the support line",
    "your personal loan", "a cash withdrawal", "the contactless limit", "the insurance policy", "a new payee",
    "the identity check", "the notice period", "a business account", "the cheque deposit", "the statement fee",
    "your credit score", "the cooling-off period", "a refund request", "the foreign exchange desk",
]  # fmt: skip
_VERBS = [
    "usually covers", "can change", "will show", "must include", "often delays", "automatically renews",
    "does not affect", "may reduce", "clearly explains", "should confirm", "normally protects",
    "briefly pauses", "rarely changes", "has to approve", "is designed to limit", "will not block",
    "can be used to settle", "needs to record", "is expected to cover", "might increase", "quietly extends",
    "takes into account", "depends on", "already includes", "is meant to replace", "helps to track",
]  # fmt: skip
_OBJECTS = [
    "the payment date", "any pending transaction", "the fee you were charged", "your available balance",
    "the exchange rate", "the agreed limit", "the security check", "the cancellation period",
    "the amount you transfer", "your regular outgoings", "the reference on the payment", "the daily allowance",
    "the outstanding balance", "the processing time", "your monthly budget", "the original receipt",
    "the terms you accepted", "the interest you earn", "the early repayment charge", "a temporary hold",
    "the verification code", "the card replacement", "the overdraft buffer", "the disputed amount",
    "the name on the account", "the address we hold", "the confirmation letter", "the annual summary",
]  # fmt: skip
_TAILS = [
    "until the next working day", "once the request is approved", "without any extra cost",
    "if you ask the branch", "after the identity check", "as described in the terms",
    "before the end of the month", "unless you tell us otherwise", "so you can plan ahead",
    "while the review is open", "for as long as the account stays open", "when the payment clears",
    "in line with the regulator's rules", "as soon as we receive the form", "even if the card is frozen",
    "within a few minutes in most cases", "whichever comes first", "at no charge to you",
    "for both account holders", "during the cooling-off period", "as long as the limit is not exceeded",
    "on the date shown in the app", "by the time the statement is issued", "and we will let you know",
]  # fmt: skip
_QUESTIONS = [
    "Why was I charged a fee on my current account last month?",
    "How long does an international transfer take to arrive?",
    "Can I raise the contactless limit on my debit card?",
    "What happens to my standing orders if I switch accounts?",
    "How do I dispute a card payment I do not recognise?",
    "Is my savings rate going to change after the base rate cut?",
    "Can I add my partner to my account without visiting a branch?",
    "What should I do if the app says my identity check failed?",
]


# Common English words (Faker's list, installed with factory-boy for the tests).
_WORDS = list(LoremProvider.word_list)


def _sentence_pool(rng: random.Random, size: int = 2000) -> list[str]:
    return [
        f"{rng.choice(_OPENERS)}, {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
        f"{rng.choice(_TAILS)}."
        for _ in range(size)
    ]


def _reference(n: int) -> str:
    """A word made of letters from ``n`` (no digits, so the PII detectors see nothing), unique per item."""
    letters = ""
    while True:
        n, rest = divmod(n, 26)
        letters += "abcdefghijklmnopqrstuvwxyz"[rest]
        if n == 0:
            return letters


def _answer(rng: random.Random, pool: list[str]) -> str:
    """About 300 words in three paragraphs. Most sentences end with a run of common English words drawn at
    random, so a comparison compresses about as well as prose does (1.9x with PostgreSQL's pglz; real
    English text measured 1.9x here, the templated sentences alone 2.6x)."""
    sentences: list[str] = []
    words = 0
    while words < 300:
        sentence = rng.choice(pool)
        if rng.random() < 0.8:
            sentence = f"{sentence[:-1]}, {' '.join(rng.choices(_WORDS, k=rng.randint(5, 9)))}."
        sentences.append(sentence)
        words += sentence.count(" ") + 1
    third = len(sentences) // 3
    return "\n\n".join(
        " ".join(part) for part in (sentences[:third], sentences[third : 2 * third], sentences[2 * third :])
    )


def _comparison_line(n: int, rng: random.Random, pool: list[str], *, gold: bool) -> dict[str, Any]:
    """One line of the comparison JSONL import: a prompt and three candidates from three models."""
    prompt = (
        f"{rng.choice(_QUESTIONS)} {' '.join(rng.sample(pool, 2))} "
        f"My case reference is {_reference(n)}, please answer in plain words."
    )
    line: dict[str, Any] = {
        "id": f"cmp-{n:07d}",
        "prompt": prompt,
        "candidates": [{"content": _answer(rng, pool), **model} for model in MODELS],
        "metadata": {"domain": "retail banking", "source": "bench"},
    }
    if gold:
        order = rng.sample([1, 2, 3], 3)
        line["gold"] = [[order[0]], sorted(order[1:])]  # 1-based in files, as users write it
    return line


# --- Seeding ---------------------------------------------------------------------------------------------


class _LineStream:
    """Generated JSONL lines, read the way the importer reads an upload (``readline``)."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines

    def readline(self, size: int = -1, /) -> bytes:
        return next(self._lines, b"")


@dataclass
class Seeded:
    seconds: float
    vacuum_seconds: float
    sample_lines: list[bytes]
    sample_ids: list[int]
    gold: int
    bytes_per_item: float
    stored_bytes_per_item: float
    database_mb: float


def _gold_in_candidate_ids(gold: Any) -> Any:
    """As the importer stores a gold ranking: candidate ids count from 0 inside Enclave."""
    return None if gold is None else [[number - 1 for number in tier] for tier in gold]


def _seed(*, project: Any, lead: Any, count: int, k: int, gold_every: int, sample: int) -> Seeded:
    """Write ``count`` comparisons (every ``gold_every``-th one gold) and their slots as the importer would:
    one ``ImportBatch`` (done), Items through COPY, ``k`` free slots per non-gold item in item order."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import ImportBatch, ImportStatus, Item
    from annotation.parsing import ImportFormat, LineError, content_hash, parse

    start = time.perf_counter()
    rng = random.Random(count)
    pool = _sentence_pool(rng)
    digest = hashlib.sha256()
    size = 0
    sample_lines: list[bytes] = []

    def lines() -> Iterator[bytes]:
        nonlocal size
        for n in range(count):
            data = (json.dumps(_comparison_line(n, rng, pool, gold=n % gold_every == gold_every // 2)) + "\n").encode()
            digest.update(data)
            size += len(data)
            if n < sample:
                sample_lines.append(data)
            yield data

    fields = [f for f in Item._meta.concrete_fields if f.attname != "id"]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    now = timezone.now()
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            project=project,
            uploaded_by=lead,
            source_name="bench-comparisons.jsonl",
            fmt=ImportFormat.COMPARISON_JSONL,
            sha256="",
            size_bytes=0,
            status=ImportStatus.RUNNING,
        )
        raw = connection.connection
        assert raw is not None
        gold = 0
        with raw.cursor() as cursor, cursor.copy(f"COPY annotation_item ({columns}) FROM STDIN") as copy:
            for entry in parse(_LineStream(lines()), ImportFormat.COMPARISON_JSONL):
                assert not isinstance(entry, LineError), entry
                # What annotation.importing._import_stream builds, with the scrubber's output equal to its
                # input (the texts hold no PII; the importer check below proves it on a sample).
                values = {
                    "project_id": project.pk,
                    "batch_id": batch.pk,
                    "kind": "comparison",
                    "external_id": entry.external_id or "",
                    "messages": json.dumps([{"role": m.role, "content": m.content} for m in entry.messages]),
                    "response": entry.response,
                    "metadata": json.dumps(entry.metadata),
                    "candidates": json.dumps(
                        [{"content": c.content, "provenance": c.provenance()} for c in entry.candidates]
                    ),
                    "gold": None if entry.gold is None else json.dumps(_gold_in_candidate_ids(entry.gold)),
                    "content_hash": content_hash(entry.messages, entry.response, entry.candidates),
                    "priority": 0,
                    "edge_case": False,
                    "state": "open",
                    "hold_reason": "",
                    "created_at": now,
                }
                gold += entry.gold is not None
                copy.write_row([values[f.attname] for f in fields])
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO annotation_slot (item_id, project_id, index, state, user_id, leased_until, priority) "
                "SELECT item.id, item.project_id, s.index, 'free', NULL, NULL, item.priority "
                "FROM annotation_item item CROSS JOIN generate_series(0, %s - 1) AS s(index) "
                "WHERE item.batch_id = %s AND item.gold IS NULL ORDER BY item.id, s.index",
                [k, batch.pk],
            )
        batch.status = ImportStatus.DONE
        batch.sha256 = digest.hexdigest()
        batch.size_bytes = size
        batch.lines_read = batch.imported_count = count
        batch.finished_at = timezone.now()
        batch.save()
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    with connection.cursor() as cursor:
        # What autovacuum does to freshly loaded tables in production, done now instead of mid-measurement.
        cursor.execute("VACUUM ANALYZE")
        vacuum = time.perf_counter() - start
        cursor.execute(
            "SELECT avg(pg_column_size(candidates)), avg(octet_length(candidates::text)) "
            "FROM annotation_item TABLESAMPLE SYSTEM (5) WHERE project_id = %s",
            [project.pk],
        )
        stored, plain = cursor.fetchone() or (0, 0)
        cursor.execute("SELECT pg_database_size(current_database())")
        (database_bytes,) = cursor.fetchone() or (0,)
    sample_ids = list(Item.objects.filter(batch=batch).order_by("id").values_list("id", flat=True)[:sample])
    return Seeded(
        seconds=seconds,
        vacuum_seconds=vacuum,
        sample_lines=sample_lines,
        sample_ids=sample_ids,
        gold=gold,
        bytes_per_item=float(plain or 0),
        stored_bytes_per_item=float(stored or 0),
        database_mb=database_bytes / 1e6,
    )


def _check_like_importer(*, lead: Any, k: int, seeded: Seeded) -> None:
    """Import the first lines through ``import_start`` into a scratch project and compare every column of
    the items and their slots with the seeded rows; everything is rolled back afterwards."""
    from django.db import transaction

    from accounts import services as accounts_services
    from annotation import services
    from annotation.models import Item, Slot

    compared = [
        f.attname for f in Item._meta.concrete_fields if f.attname not in {"id", "project_id", "batch_id", "created_at"}
    ]
    with transaction.atomic():
        scratch = accounts_services.project_create(actor=lead, name="Importer check", admin=lead)
        services.annotation_settings_update(
            actor=lead, project=scratch, annotators_per_item=k, lease_minutes=30,
            pii_mode="replace", pii_patterns=[], pii_terms=[],
        )  # fmt: skip
        batch = services.import_start(
            actor=lead,
            project=scratch,
            upload=io.BytesIO(b"".join(seeded.sample_lines)),
            source_name="check.jsonl",
            fmt="comparison_jsonl",
        )
        assert batch.status == "done", (batch.status, batch.errors[:3])
        assert not batch.scrub_counts, f"the generated texts hold PII: {batch.scrub_counts}"
        imported = list(Item.objects.filter(batch=batch).order_by("id").values("id", *compared))
        ours = list(Item.objects.filter(pk__in=seeded.sample_ids).order_by("id").values("id", *compared))
        assert len(imported) == len(ours) == len(seeded.sample_lines)
        slot_fields = ("index", "state", "user_id", "leased_until", "priority")
        for mine, theirs in zip(ours, imported, strict=True):
            for name in compared:
                assert mine[name] == theirs[name], f"seeded {name} differs from the importer's: item {mine['id']}"
            mine_slots = list(Slot.objects.filter(item_id=mine["id"]).order_by("index").values_list(*slot_fields))
            their_slots = list(Slot.objects.filter(item_id=theirs["id"]).order_by("index").values_list(*slot_fields))
            assert mine_slots == their_slots, f"seeded slots differ from the importer's: item {mine['id']}"
        transaction.set_rollback(True)


# --- The server ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """gunicorn with the production settings against the throwaway database, stopped on exit."""

    def __init__(
        self, env: dict[str, str], workers: int, threads: int, log: Path, app: str = "enclave.wsgi:application"
    ) -> None:
        self.port = _free_port()
        command = [
            sys.executable, "-m", "gunicorn", app,
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads", str(threads),
        ]  # fmt: skip
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            probe = Api(self.port)
            try:
                status, _, _ = probe.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            finally:
                probe.conn.close()
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"gunicorn did not answer within a minute:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Api:
    """One keep-alive HTTP connection, as a browser tab or a script would hold it. The requests say what
    the TLS-terminating proxy of docker-compose.yml says: X-Forwarded-Proto https."""

    def __init__(self, port: int, token: str = "") -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"X-Forwarded-Proto": "https"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self.reconnects = 0

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, float]:
        """Send one request; (status, body, milliseconds). An idle keep-alive connection the server closed is
        opened again once (both endpoints driven here are idempotent)."""
        all_headers = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            start = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt == 2:
                    raise
                self.reconnects += 1
                continue
            self.last = response
            return response.status, data, (time.perf_counter() - start) * 1000
        raise AssertionError("unreachable")

    def post_json(self, path: str, payload: dict[str, Any] | None = None) -> tuple[int, Any, float]:
        body = json.dumps(payload).encode() if payload is not None else b""
        status, data, ms = self.request("POST", path, body, {"Content-Type": "application/json"})
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data[:200].decode(errors="replace")
        return status, parsed, ms


# --- Where the CPU goes -----------------------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and of their children that have ended (Linux /proc): a
    PostgreSQL backend that closes is counted by the postmaster, a gunicorn worker by the master."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _pids(*, parent: int | None = None, name: str | None = None) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, rest = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        if (parent is not None and int(rest.split()[1]) == parent) or (name is not None and comm.endswith(f"({name}")):
            found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds used so far by the web server (gunicorn and its workers), PostgreSQL, Redis and this
    process (the load generator), which all share the machine's cores."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def sample(self) -> dict[str, float]:
        if not Path("/proc/self/stat").exists():
            return {}
        own = os.times()
        return {
            "web": _cpu_seconds([self.server_pid, *_pids(parent=self.server_pid)]),
            "PostgreSQL": _cpu_seconds(_pids(name="postgres")),
            "Redis": _cpu_seconds(_pids(name="redis-server")),
            "load generator": own.user + own.system,
            "wall": time.perf_counter(),
        }

    @staticmethod
    def per_judgement(before: dict[str, float], after: dict[str, float], judgements: int) -> tuple[str, str]:
        """("web 30.1 + PostgreSQL 8.0 + … ms", "1.9 of 2 cores") between two samples."""
        if not before or not judgements:
            return "n/a", "n/a"
        used = {name: after[name] - before[name] for name in before if name != "wall"}
        wall = after["wall"] - before["wall"]
        parts = " + ".join(f"{name} {seconds * 1000 / judgements:.1f}" for name, seconds in used.items())
        return f"{parts} ms", f"{sum(used.values()) / wall:.2f} of {os.cpu_count()} cores"


# --- Annotators ------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one simulated annotator saw."""

    username: str
    acked: dict[str, int] = field(default_factory=dict)  # idempotency key → judgement id of the 201
    conflicting_acks: int = 0  # the same key acknowledged with two different judgement ids
    handed: list[int] = field(default_factory=list)  # item ids "next" handed out, in order
    judged: set[int] = field(default_factory=set)  # item ids whose submit was acknowledged
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    in_window: int = 0  # judgements acknowledged inside the measured window
    errors: Counter[str] = field(default_factory=Counter)
    resent: int = 0  # submits sent again with a key already used (after the answer, or racing it)
    exhausted: bool = False


class Annotator:
    """Closed loop: ask for the next comparison, rank it, submit; some submits are sent twice.

    With ``and_next`` the client works as the comparison page does: each submit goes to the endpoint that
    stores the judgement and answers with the next comparison, so a judgement is one request, not two."""

    def __init__(
        self,
        *,
        port: int,
        token: str,
        username: str,
        project_id: int,
        seed: int,
        resend_every: int,
        and_next: bool = False,
    ) -> None:
        self.port = port
        self.token = token
        self.api = Api(port, token)
        self.second: Api | None = None
        self.tally = Tally(username)
        self.project_id = project_id
        self.rng = random.Random(seed)
        self.resend_every = resend_every
        self.and_next = and_next
        self.upcoming: dict[str, Any] | None = None  # the comparison the last and-next answer handed out

    def cycle(self, *, window: tuple[float, float] | None) -> bool:
        """One comparison; False when the queue has nothing left for this annotator. Times are kept when
        ``window`` is None (sequential) or the request started inside it."""
        tally = self.tally
        started = time.perf_counter()
        keep = window is None or window[0] <= started < window[1]
        if self.upcoming is not None:
            body, self.upcoming = self.upcoming, None
        else:
            status, body, ms = self.api.post_json(f"/api/v1/projects/{self.project_id}/comparisons/next/")
            if status == 204:
                tally.exhausted = True
                return False
            if status != 200:
                tally.errors[f"next {status}: {str(body)[:80]}"] += 1
                return True
            if keep:
                tally.next_ms.append(ms)
            tally.handed.append(body["id"])
        item = body["id"]
        letters = [c["letter"] for c in body["candidates"]]
        self.rng.shuffle(letters)
        # A strict order, or a best answer over a tie of the rest.
        ranking = [[letter] for letter in letters] if self.rng.random() < 0.7 else [letters[:1], letters[1:]]
        payload: dict[str, Any] = {
            "ranking": ranking,
            "time_spent_ms": self.rng.randint(20_000, 120_000),
            "idempotency_key": uuid.uuid4().hex,
        }
        submit = f"/api/v1/projects/{self.project_id}/comparisons/{item}/judgements/"
        if self.and_next:
            submit += "and-next/"
        n = len(tally.handed)
        racing = self.resend_every and n % self.resend_every == self.resend_every // 2
        if racing:
            # A double click: the same submit on two connections at once.
            self.second = self.second or Api(self.port, self.token)
            twin: list[tuple[int, Any, float]] = []
            other = threading.Thread(target=lambda: twin.append(self._post(self.second, submit, payload)))
            other.start()
            status, out, ms = self.api.post_json(submit, payload)
            other.join()
            tally.resent += 1
            self._ack(payload["idempotency_key"], *twin[0])
        else:
            status, out, ms = self.api.post_json(submit, payload)
        acked_at = time.perf_counter()
        if keep:
            tally.submit_ms.append(ms)
        self._ack(payload["idempotency_key"], status, out, ms)
        if status == 201:
            tally.judged.add(item)
        if self.and_next and status == 201:
            self.upcoming = out["next"]
            if self.upcoming is None:
                tally.exhausted = True
            else:
                tally.handed.append(self.upcoming["id"])
        if status == 201 and (window is None or window[0] <= acked_at <= window[1]):
            tally.in_window += 1
        if self.resend_every and n % self.resend_every == 0:
            # A retry after a lost answer: the same key again, after the first was acknowledged.
            tally.resent += 1
            self._ack(payload["idempotency_key"], *self.api.post_json(submit, payload))
        return not tally.exhausted

    @staticmethod
    def _post(api: Api | None, path: str, payload: dict[str, Any]) -> tuple[int, Any, float]:
        assert api is not None
        return api.post_json(path, payload)

    def _ack(self, key: str, status: int, out: Any, ms: float) -> None:
        tally = self.tally
        if status != 201:
            tally.errors[f"submit {status}: {str(out)[:80]}"] += 1
            return
        judgement = out["judgement"]["id"] if self.and_next else out["id"]
        earlier = tally.acked.setdefault(key, judgement)
        if earlier != judgement:
            tally.conflicting_acks += 1


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share + 0.5) - 1)]


def _ms(values: list[float], share: float) -> str:
    return f"{_percentile(values, share):.1f} ms" if values else "n/a"


# --- Checks from the database ----------------------------------------------------------------------------


def _verify(*, project: Any, k: int, tallies: list[Tally]) -> dict[str, Counter[str]]:
    """Lost, duplicated and double-assigned judgements, counted from the database against what the clients
    were told."""
    from django.db.models import Count, Exists, OuterRef

    from annotation.models import Item, Slot, SlotState
    from preferences.models import Judgement

    gold_ids = set(Item.objects.filter(project=project, gold__isnull=False).values_list("id", flat=True))
    judgements = Judgement.objects.filter(item__project=project)
    stored = dict(judgements.values_list("idempotency_key", "id"))
    lost: Counter[str] = Counter()
    duplicated: Counter[str] = Counter()
    double: Counter[str] = Counter()
    for tally in tallies:
        lost["acknowledged, not stored"] += sum(1 for key, pk in tally.acked.items() if stored.get(key) != pk)
        duplicated["one key acknowledged as two judgements"] += tally.conflicting_acks
    duplicated["two judgements of one item by one annotator"] = (
        judgements.values("item", "annotator").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    duplicated["two judgements with one key"] = (
        judgements.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    plain = judgements.filter(is_gold=False)
    double["items judged more than k times"] = plain.values("item").annotate(n=Count("id")).filter(n__gt=k).count()
    double["items with more than k slots"] = (
        Slot.objects.filter(project=project).values("item").annotate(n=Count("id")).filter(n__gt=k).count()
    )
    done_slot = Slot.objects.filter(item=OuterRef("item"), user=OuterRef("annotator"), state=SlotState.DONE)
    double["judgements without the judge's slot"] = plain.exclude(Exists(done_slot)).count()
    holders = set(Slot.objects.filter(project=project, user__isnull=False).values_list("user__username", "item_id"))
    users_per_item: Counter[int] = Counter()
    by_user: dict[str, list[Tally]] = {}
    for tally in tallies:  # one user may drive several phases, in order
        by_user.setdefault(tally.username, []).append(tally)
    for username, phases in by_user.items():
        judged_before: set[int] = set()
        for phase in phases:
            handed_here = [item for item in phase.handed if item not in gold_ids]
            double["items handed twice to one annotator"] += len(handed_here) - len(set(handed_here))
            # A later phase resumes the comparisons the user still holds; one they judged must not come back.
            double["items handed twice to one annotator"] += len(set(handed_here) & judged_before)
            judged_before |= phase.judged
        handed = [item for phase in phases for item in phase.handed if item not in gold_ids]
        # A slot taken over by someone else while its holder still works on it would show here.
        double["items handed out whose slot is not the annotator's"] += sum(
            1 for item in set(handed) if (username, item) not in holders
        )
        users_per_item.update(set(handed))
    double["items handed to more than k annotators"] = sum(1 for n in users_per_item.values() if n > k)
    return {"lost": lost, "duplicated": duplicated, "double-assigned": double}


def _count(found: Counter[str]) -> str:
    total = sum(found.values())
    if not total:
        return "0"
    return f"{total} ({'; '.join(f'{name}: {n}' for name, n in found.items() if n)})"


# --- The ranking page ------------------------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        if tag == "link" and "stylesheet" in values.get("rel", "").split() and values.get("href"):
            self.styles.append(values["href"])


def _cookies(api: Api, jar: dict[str, str]) -> None:
    for header in api.last.headers.get_all("Set-Cookie") or []:
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        jar.update({name: morsel.value for name, morsel in cookie.items()})


def _page_bytes(*, port: int, project_id: int, username: str) -> dict[str, str]:
    """Log in through the login form (a real POST with the CSRF token) and fetch the comparison page in
    ranking mode plus every script and stylesheet it references, as a browser would."""
    api = Api(port)
    origin = f"https://127.0.0.1:{port}"
    jar: dict[str, str] = {}
    status, html, _ = api.request("GET", "/login/")
    assert status == 200, status
    _cookies(api, jar)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token on the login page"
    form = urllib.parse.urlencode(
        {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": match.group(1).decode()}
    ).encode()
    status, _, _ = api.request(
        "POST",
        "/login/",
        form,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
            "Origin": origin,
            "Referer": f"{origin}/login/",
        },
    )
    assert status == 302, f"login answered {status}"
    _cookies(api, jar)
    assert "sessionid" in jar, "no session after logging in"
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
    page = f"/projects/{project_id}/compare/"
    status, html, _ = api.request("GET", page, headers=cookie)
    assert status == 200, status
    assert b'name="rank_A"' in html, "not the ranking page"
    page_gzip = api.last.getheader("Content-Encoding") or "none"
    parser = _Assets()
    parser.feed(html.decode())
    plain = {"html": len(html), "js": 0, "css": 0}
    served = len(html)
    encodings = {f"html: {page_gzip}"}
    for kind, urls in (("js", parser.scripts), ("css", parser.styles)):
        for url in urls:
            status, body, _ = api.request("GET", url, headers=cookie)
            assert status == 200, (url, status)
            plain[kind] += len(body)
            status, body, _ = api.request("GET", url, headers={**cookie, "Accept-Encoding": "gzip, deflate, br"})
            served += len(body)
            encodings.add(f"{kind}: {api.last.getheader('Content-Encoding') or 'none'}")
    total = sum(plain.values())
    files = 1 + len(parser.scripts) + len(parser.styles)
    return {
        "total": f"{total / 1024:.1f} KB",
        "parts": f"HTML {plain['html'] / 1024:.1f} + JS {plain['js'] / 1024:.1f} + CSS {plain['css'] / 1024:.1f} KB",
        "files": f"{files} ({len(parser.scripts)} scripts, {len(parser.styles)} stylesheets)",
        "served": f"{served / 1024:.1f} KB ({', '.join(sorted(encodings))})",
    }


# --- One size --------------------------------------------------------------------------------------------


@dataclass
class Options:
    judgements: int
    warmup: int
    clients: int
    duration: float
    ramp: float
    k: int
    gold_every: int
    resend_every: int
    workers: int
    threads: int
    sample: int
    crowds: list[str]


def _crowd(crowd: list[Annotator], opts: "Options", meter: CpuMeter) -> dict[str, str]:
    """Run the annotators at once without think time: judgements/s, latency and CPU in the measured window."""
    begin = time.perf_counter()
    window = (begin + opts.ramp, begin + opts.ramp + opts.duration)

    def run(annotator: Annotator) -> None:
        try:
            while time.perf_counter() < window[1] and annotator.cycle(window=window):
                pass
        except Exception as exc:  # counted and shown: the table must say when a client failed
            annotator.tally.errors[f"client {type(exc).__name__}: {exc}"] += 1

    threads = [threading.Thread(target=run, args=(a,)) for a in crowd]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, window[0] - time.perf_counter()))
    before = meter.sample()
    time.sleep(max(0.0, window[1] - time.perf_counter()))
    after = meter.sample()
    for thread in threads:
        thread.join()
    tallies = [a.tally for a in crowd]
    judged = sum(t.in_window for t in tallies)
    result: dict[str, str] = {}
    result["cpu"], result["cores"] = meter.per_judgement(before, after, judged)
    result["throughput"] = f"{judged / opts.duration:,.0f} /s"
    next_ms = [ms for t in tallies for ms in t.next_ms]
    result["next p95"] = _ms(next_ms, 0.95) if next_ms else "(with the submit)"
    result["submit p95"] = _ms([ms for t in tallies for ms in t.submit_ms], 0.95)
    result["n"] = f"{judged:,} in {opts.duration:.0f} s"
    result["resent"] = f"{sum(t.resent for t in tallies):,}"
    if any(t.exhausted for t in tallies):
        result["throughput"] += " (queue ran dry)"
    return result


def _run_size(count: int, opts: Options, base_env: dict[str, str], work: Path) -> dict[str, str]:
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection, connections

    from accounts import services as accounts_services
    from accounts.models import Role
    from annotation import services as annotation_services
    from preferences import services as preference_services

    cache.clear()  # cached figures are per project id, and every throwaway database starts again at 1
    # Not test_<name>: the test suite may be running on this server at the same time.
    real_name = connections["default"].settings_dict["NAME"]
    connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = f"{real_name}_bench_preferences"
    result: dict[str, str] = {}
    with throwaway_database():
        lead = accounts_services.user_create(actor=None, username="lead")
        project = accounts_services.project_create(actor=lead, name=f"Bench {count}", admin=lead)
        annotation_services.annotation_settings_update(
            actor=lead, project=project, annotators_per_item=opts.k, lease_minutes=30,
            pii_mode="replace", pii_patterns=[], pii_terms=[],
        )  # fmt: skip
        preference_services.preference_settings_update(actor=lead, project=project, mode="ranking")

        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version'), current_setting('shared_buffers')")
            result["postgres"], result["shared_buffers"] = cursor.fetchone() or ("?", "?")
        print(f"[{count:,}] seeding …", flush=True)
        seeded = _seed(
            project=project, lead=lead, count=count, k=opts.k, gold_every=opts.gold_every, sample=opts.sample
        )
        _check_like_importer(lead=lead, k=opts.k, seeded=seeded)
        print(f"[{count:,}] seeded in {seeded.seconds:.0f} s, vacuum analyze {seeded.vacuum_seconds:.0f} s", flush=True)
        result["seed"] = f"{seeded.seconds:,.0f} s ({count / seeded.seconds:,.0f}/s)"
        result["vacuum"] = f"{seeded.vacuum_seconds:,.0f} s"
        result["db size"] = f"{seeded.database_mb / 1000:.2f} GB"
        result["gold"] = f"{seeded.gold:,}"
        result["candidates size"] = f"{seeded.bytes_per_item / 1024:.1f} → {seeded.stored_bytes_per_item / 1024:.1f} KB"

        users: list[tuple[str, str]] = []
        for n in range(opts.clients + 1):
            user = accounts_services.user_create(actor=lead, username=f"annotator{n:02d}")
            accounts_services.membership_add(actor=lead, project=project, user=user, role=Role.ANNOTATOR)
            _, token = accounts_services.api_token_create(user=user, name="bench", days=1)
            users.append((user.username, token))
        reader = accounts_services.user_create(actor=lead, username="reader", password=PASSWORD)
        accounts_services.membership_add(actor=lead, project=project, user=reader, role=Role.ANNOTATOR)

        test_name = settings.DATABASES["default"]["NAME"]
        url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{test_name}").geturl()
        connection.close()
        server = Server({**base_env, "DATABASE_URL": url}, opts.workers, opts.threads, work / f"gunicorn-{count}.log")
        try:
            print(f"[{count:,}] one annotator, {opts.judgements:,} judgements …", flush=True)
            username, token = users[0]
            solo = Annotator(
                port=server.port, token=token, username=username, project_id=project.pk, seed=1, resend_every=0
            )
            for _ in range(opts.warmup):
                solo.cycle(window=(0.0, 0.0))
            solo.tally.next_ms.clear()
            solo.tally.submit_ms.clear()
            meter = CpuMeter(server.proc.pid)
            before = meter.sample()
            for _ in range(opts.judgements):
                if not solo.cycle(window=None):
                    break
            result["solo cpu"], result["solo cores"] = meter.per_judgement(
                before, meter.sample(), len(solo.tally.submit_ms)
            )
            result["next p50"] = _ms(solo.tally.next_ms, 0.5)
            result["next p95"] = _ms(solo.tally.next_ms, 0.95)
            result["submit p50"] = _ms(solo.tally.submit_ms, 0.5)
            result["submit p95"] = _ms(solo.tally.submit_ms, 0.95)
            result["solo n"] = f"{len(solo.tally.submit_ms):,}"

            crowds: list[Annotator] = []
            for style in opts.crowds:
                print(
                    f"[{count:,}] {opts.clients} annotators ({style}) for {opts.ramp + opts.duration:.0f} s …",
                    flush=True,
                )
                crowd = [
                    Annotator(port=server.port, token=token, username=username, project_id=project.pk,
                              seed=n + 2 + 1000 * len(crowds), resend_every=opts.resend_every,
                              and_next=style == AND_NEXT)
                    for n, (username, token) in enumerate(users[1:])
                ]  # fmt: skip
                result.update({f"{style} {name}": value for name, value in _crowd(crowd, opts, meter).items()})
                crowds.extend(crowd)

            everyone = [solo.tally, *(a.tally for a in crowds)]
            checks = _verify(project=project, k=opts.k, tallies=everyone)
            for name, found in checks.items():
                result[name] = _count(found)
            errors: Counter[str] = Counter()
            for tally in everyone:
                errors.update(tally.errors)
            result["errors"] = _count(errors)
            reconnects = solo.api.reconnects + sum(a.api.reconnects for a in crowds)
            result["reconnects"] = f"{reconnects:,}"

            page = _page_bytes(port=server.port, project_id=project.pk, username=reader.username)
            result.update({f"page {name}": value for name, value in page.items()})
        finally:
            server.stop()
        connection.close()
    cache.clear()  # the pending agreement task and cached figures of a database that is gone
    return result


# --- Main ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, nargs="+", default=[10_000, 50_000, 1_000_000])
    parser.add_argument("--judgements", type=int, default=1000, help="sequential judgements by one annotator")
    parser.add_argument("--clients", type=int, default=32, help="concurrent annotators")
    parser.add_argument("--duration", type=float, default=60, help="seconds measured with all annotators")
    parser.add_argument("--ramp", type=float, default=5, help="seconds of concurrent load before measuring")
    parser.add_argument("--k", type=int, default=3, help="annotators per comparison")
    parser.add_argument("--gold-every", type=int, default=100, help="one gold comparison in this many")
    parser.add_argument("--resend-every", type=int, default=10, help="send the same submit twice every n")
    parser.add_argument("--workers", type=int, default=GUNICORN_WORKERS)
    parser.add_argument("--threads", type=int, default=GUNICORN_THREADS)
    parser.add_argument(
        "--crowd", nargs="+", choices=list(CROWDS), default=list(CROWDS),
        help="how the concurrent annotators call: submit-and-next (one request a judgement, as the page does), "
        "next then submit (two); each runs for --duration, in this order",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 comparisons, short phases")
    args = parser.parse_args()
    if args.quick:  # smaller defaults; what is given on the command line stays
        for name, value in {"comparisons": [2000], "judgements": 100, "duration": 10, "ramp": 2}.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("This benchmark runs on PostgreSQL only: set DATABASE_URL=postgres://…")
    redis_url = os.environ.get("REDIS_URL", "")
    redis_db = urllib.parse.urlsplit(redis_url).path.strip("/") or "0"
    if not redis_url.startswith("redis://") or redis_db in {"0", "15"}:
        raise SystemExit(
            "Set REDIS_URL to a Redis database the benchmark may empty, not 0 and not 15 (the test suite's), "
            "e.g. redis://127.0.0.1:6379/14"
        )

    import django

    django.setup()

    work = Path(tempfile.mkdtemp(prefix="enclave-bench-preferences-"))
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enclave.settings.production",
        "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_PROXY_SSL_HEADER": "true",  # as docker-compose.yml: the proxy terminates TLS
        "ENCLAVE_DATA_DIR": str(work / "data"),
        "STATIC_ROOT": str(work / "static"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    collect_static(base_env)
    opts = Options(
        judgements=args.judgements,
        warmup=50,
        clients=args.clients,
        duration=args.duration,
        ramp=args.ramp,
        k=args.k,
        gold_every=args.gold_every,
        resend_every=args.resend_every,
        workers=args.workers,
        threads=args.threads,
        sample=min(200, min(args.comparisons)),
        crowds=[CROWDS[name] for name in args.crowd],
    )
    results = {}
    for count in args.comparisons:
        results[count] = _run_size(count, opts, base_env, work)
        print(json.dumps(results[count], ensure_ascii=False), flush=True)  # kept if a later size fails
    version, shared_buffers = (results[args.comparisons[-1]][key] for key in ("postgres", "shared_buffers"))

    measures = [
        ("seed by COPY (importer's parser and hash, no PII scrub)", "seed", ""),
        ("VACUUM ANALYZE after seeding", "vacuum", ""),
        ("database size", "db size", ""),
        ("gold comparisons (no slots)", "gold", ""),
        ("candidates per item, JSON → stored (TOAST)", "candidates size", ""),
        ('1 annotator: "next comparison" p50', "next p50", ""),
        ('1 annotator: "next comparison" p95', "next p95", "≤ 12 ms (other tool: 124 ms)"),
        ('1 annotator: "submit judgement" p50', "submit p50", ""),
        ('1 annotator: "submit judgement" p95', "submit p95", "≤ 16 ms (other tool: 163 ms)"),
        ("1 annotator: judgements timed", "solo n", ""),
        ("1 annotator: CPU per judgement (next + submit)", "solo cpu", ""),
        ("1 annotator: cores busy", "solo cores", ""),
        *(
            row
            for style in opts.crowds
            for row in (
                (f"{args.clients} annotators, {style}, closed loop: judgements/s", f"{style} throughput", "≥ 300 /s"),
                (f"{args.clients} annotators, {style}: judgements in the window", f"{style} n", ""),
                (f'{args.clients} annotators, {style}: "next" p95', f"{style} next p95", ""),
                (f'{args.clients} annotators, {style}: "submit" p95', f"{style} submit p95", ""),
                (f"{args.clients} annotators, {style}: CPU per judgement", f"{style} cpu", ""),
                (f"{args.clients} annotators, {style}: cores busy", f"{style} cores", ""),
                (f"{args.clients} annotators, {style}: submits sent twice with the same key", f"{style} resent", ""),
            )
        ),
        ("lost judgements", "lost", "0"),
        ("duplicated judgements", "duplicated", "0"),
        ("double-assigned judgements", "double-assigned", "0"),
        ("failed requests (non-2xx)", "errors", "0"),
        ("keep-alive connections reopened", "reconnects", ""),
        ("ranking page: HTML+JS+CSS, uncompressed", "page total", "< 100 KB"),
        ("ranking page: parts", "page parts", ""),
        ("ranking page: files", "page files", ""),
        ("ranking page: as served (Accept-Encoding: gzip, br)", "page served", ""),
    ]
    header = ["measure", *(f"{size_label(c)} comparisons" for c in args.comparisons), "target"]
    rows = [[name, *(results[c].get(key, "n/a") for c in args.comparisons), target] for name, key, target in measures]
    try:
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty"],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown"
    print(
        f"\nCode {revision}. PostgreSQL {version} (shared_buffers {shared_buffers}) and Redis on this machine; "
        f"gunicorn {args.workers} workers × {args.threads} threads, production settings, over HTTP on loopback "
        f"with API tokens. The load generator (this process) shares the same cores. Three ~300-word candidates "
        f"per comparison, ranking mode, k = {args.k}, one gold comparison in {args.gold_every}, default gold rate "
        f"0.1; {args.judgements:,} sequential judgements after 50 warm-up; {args.clients} annotators without think "
        f"time for {args.duration:.0f} s after {args.ramp:.0f} s of ramp, once per way of calling "
        f"({'; '.join(opts.crowds)}; with “submit and next” a judgement is one request, as on the comparison "
        f"page), one submit in {args.resend_every} sent twice (CPU per judgement includes those). “Other tool”: "
        f"the most-used open-source tool, measured on the same machine at 50k."
    )
    print_columns("Preferences over HTTP", header, rows)


if __name__ == "__main__":
    main()
