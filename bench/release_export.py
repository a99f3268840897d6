"""Preference release build and export on PostgreSQL: rows/s and MB/s per format, peak RSS, time to first
byte and speed of a streamed download, and ``manage.py release_export``.

For each size, a throwaway PostgreSQL database (Django's test-database machinery, named
``<name>_bench_releases``) is migrated and loaded by COPY with that many comparisons of two candidates and
one pairwise judgement each (k = 1, every judgement decisive: judgements = comparisons = rows of the
overall preference set). The prompt and both candidates are ~300 random common words each (~7.7 KB of
text per judgement); from 1M judgements on, ~50 words each, to fit the machine (``--words`` overrides).
The release is built by ``releases.services.release_build`` (the production code the Celery task runs) in
a child process with the production settings, so its peak RSS (``ru_maxrss``) belongs to one build; the
web/Celery path that queues it is bypassed: the Release row is created directly, queued, with the
canonical recipe (preference, eval fraction 0.1, leakage policy "fail"). Per format, rows/s and MB/s are
the rows and bytes of that format's files over the seconds the build spent in its exporter
(``build_stats["exporter_seconds"]``); the build's own rate covers everything (one pass over the data,
aggregation, leak check, all formats, hashing, storing). gunicorn is then started as in production
(``docker-compose.yml``: production settings, 3 workers of 4 threads, X-Forwarded-Proto from the TLS proxy)
and the TRL train file is downloaded over loopback by a data lead logged in through the login form (the
``release_file`` page), and by the API with a token. The database and the artifacts are removed after
each size. PostgreSQL is required; Redis is used if ``REDIS_URL`` is set (it is not emptied).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave \\
        .venv/bin/python bench/release_export.py --sizes 10000 100000 1000000
    ... bench/release_export.py --quick             (a smoke run: 2,000 judgements, about a minute)
    ... bench/release_export.py --sizes 10000 --profile   (cProfile of the build: top functions)

The generated rows skip the importer and the judging services: they are what those write (see
``preference_collection.py`` for that path), except that the display order is drawn at random instead of
from the server secret and the content hash is a plain sha256 of the texts (both unread by the build).
"""

import argparse
import gc
import hashlib
import http.client
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from _common import ROOT, collect_static, print_columns, size_label, throwaway_database

RESULT_MARK = "BENCH-RESULT "
PASSWORD = "bench-release-password-3141"  # noqa: S105 - a throwaway account in a throwaway database
ANNOTATORS = 20
SHORT_TEXTS_FROM = 1_000_000
TEXT_WORDS = 300
SHORT_WORDS = 50
# Copies of the data on disk while a size runs: PostgreSQL (~1.3), TRL and OpenAI JSONL, Parquet, the
# Arrow scratch stream and the datasets directory, and the release_export copy.
DISK_COPIES = 7.5
MODELS = (
    {"model": "llama-3.1-8b-instruct", "version": "2024-07", "adapter": None,
     "decoding": {"temperature": 0.7, "top_p": 0.9}, "extra": {}},
    {"model": "mistral-7b-bank-sft", "version": "v3", "adapter": "sft-lora-r16",
     "decoding": {"temperature": 0.7}, "extra": {}},
)  # fmt: skip
# Targets from the issue, and the most-used open-source tool measured on the same machine at 50k.
TARGET_ROWS_PER_S = 17_000
TARGET_TTFB_S = 1.0
TARGET_GROWTH_MB = 200
OTHER_TOOL = "345 rows/s, first byte after 143 s, 2 GB"


# --- Texts ---------------------------------------------------------------------------------------------------


def _vocabulary() -> list[str]:
    """Common English words (Faker's list, installed with factory-boy) and hyphenated pairs of them, so a
    300-word text weighs ~2.6 KB (8.6 bytes a word with its space). Random words make every prompt distinct
    for the near-duplicate check (word 3-gram shingles): no two prompts share more than chance."""
    from faker.providers.lorem.en_US import Provider as LoremProvider

    words = sorted(set(LoremProvider.word_list))
    rng = random.Random(7)
    pairs = [f"{a}-{b}" for a, b in zip(rng.sample(words, 500), rng.sample(words, 500), strict=True)]
    return words + pairs


def _text(rng: random.Random, vocabulary: list[str], words: int) -> str:
    count = words + rng.randint(-words // 10, words // 10)
    text = " ".join(rng.choices(vocabulary, k=count))
    return text[0].upper() + text[1:] + "."


# --- Loading -------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    seconds: float
    analyze_seconds: float
    text_bytes: int  # prompt + both candidates, summed over the judgements
    database_mb: float


def load_comparisons(*, project: Any, lead: Any, annotators: list[int], count: int, words: int) -> Loaded:
    """``count`` comparison items (by COPY, with their ids) and one pairwise judgement of each (by COPY)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import ImportBatch, Item
    from preferences.models import Judgement

    start = time.perf_counter()
    rng = random.Random(count)
    vocabulary = _vocabulary()
    now = timezone.now()
    item_fields = [f.attname for f in Item._meta.concrete_fields]
    judgement_fields = [f.attname for f in Judgement._meta.concrete_fields if f.attname != "id"]
    text_bytes = 0
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            project=project, uploaded_by=lead, source_name="bench-comparisons.jsonl", fmt="comparison_jsonl",
            sha256="", size_bytes=0, status="done", lines_read=count, imported_count=count, finished_at=now,
        )  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('annotation_item', 'id'))")
            (first_id,) = cursor.fetchone() or (1,)
        raw = connection.connection
        assert raw is not None
        columns = ", ".join(item_fields)
        with raw.cursor() as cursor, cursor.copy(f"COPY annotation_item ({columns}) FROM STDIN") as copy:
            for n in range(count):
                prompt, first, second = (_text(rng, vocabulary, words) for _ in range(3))
                text_bytes += len(prompt.encode()) + len(first.encode()) + len(second.encode())
                row = {
                    "id": first_id + n,
                    "project_id": project.pk,
                    "batch_id": batch.pk,
                    "kind": "comparison",
                    "external_id": f"cmp-{n:07d}",
                    "messages": orjson.dumps([{"role": "user", "content": prompt}]).decode(),
                    "response": None,
                    "metadata": '{"source": "bench"}',
                    "candidates": orjson.dumps(
                        [
                            {"content": text, "provenance": model}
                            for text, model in zip((first, second), MODELS, strict=True)
                        ]
                    ).decode(),
                    "gold": None,
                    "content_hash": hashlib.sha256(f"{prompt}\x00{first}\x00{second}".encode()).hexdigest(),
                    "priority": 0,
                    "edge_case": False,
                    "state": "open",
                    "hold_reason": "",
                    "created_at": now,
                }
                copy.write_row([row[name] for name in item_fields])
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('annotation_item', 'id'), %s)", [first_id + count - 1])
        columns = ", ".join(judgement_fields)
        with raw.cursor() as cursor, cursor.copy(f"COPY preferences_judgement ({columns}) FROM STDIN") as copy:
            for n in range(count):
                order = [0, 1] if rng.random() < 0.5 else [1, 0]
                shown = "A" if rng.random() < 0.5 else "B"
                strength = rng.randint(1, 3)
                row = {
                    "item_id": first_id + n,
                    "annotator_id": annotators[n % len(annotators)],
                    "mode": "pairwise",
                    "seed": rng.getrandbits(48),
                    "displayed_order": json.dumps(order),
                    "result": json.dumps({"winner": order["AB".index(shown)], "strength": strength}),
                    "displayed_result": json.dumps({"choice": shown, "strength": str(strength)}),
                    "rationale": "",
                    "time_spent_ms": rng.randint(20_000, 120_000),
                    "idempotency_key": f"bench-{n:032d}",
                    "is_gold": False,
                    "gold_correct": None,
                    "too_fast": False,
                    "created_at": now,
                }
                copy.write_row([row[name] for name in judgement_fields])
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    with connection.cursor() as cursor:
        # What autovacuum does to freshly loaded tables in production, done now instead of mid-build.
        cursor.execute("VACUUM ANALYZE annotation_item")
        cursor.execute("VACUUM ANALYZE preferences_judgement")
        analyze = time.perf_counter() - start
        cursor.execute("SELECT pg_database_size(current_database())")
        (database_bytes,) = cursor.fetchone() or (0,)
    return Loaded(seconds, analyze, text_bytes, database_bytes / 1e6)


# --- The build, in a child process ---------------------------------------------------------------------------


def _rss_mb(field: str = "VmRSS") -> float:
    """Resident MB now: all (VmRSS), or anonymous memory only (RssAnon: without mapped file pages, which
    the page cache can drop; the datasets step maps the Arrow files it reads)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child_build(release_id: int, profile: str) -> None:
    """Run in the child: build the release, print the figures as one JSON line."""
    import django

    django.setup()
    from releases import services

    gc.collect()
    baseline = _maxrss_mb()
    baseline_now = _rss_mb()
    baseline_anon = _rss_mb("RssAnon")
    samples: list[tuple[float, float, float]] = []
    done = threading.Event()
    started = time.perf_counter()

    def sample() -> None:  # when the peak happens (which phase), from VmRSS every 0.2 s
        while not done.wait(0.2):
            samples.append((time.perf_counter() - started, _rss_mb(), _rss_mb("RssAnon")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    release = services.release_build(release_id=release_id)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    assert release is not None
    peak_at = max(samples, key=lambda s: s[1])[0] if samples else seconds
    peak_anon = max((s[2] for s in samples), default=0.0)
    print(
        RESULT_MARK
        + json.dumps(
            {
                "state": release.state,
                "failure_reason": release.failure_reason,
                "seconds": seconds,
                "build_stats": release.build_stats,
                "baseline_mb": baseline,
                "baseline_now_mb": baseline_now,
                "peak_mb": _maxrss_mb(),
                "peak_at_s": peak_at,
                "baseline_anon_mb": baseline_anon,
                "peak_anon_mb": peak_anon,
                "torch_imported": "torch" in sys.modules,
            }
        ),
        flush=True,
    )


def run_child_build(release_id: int, env: dict[str, str], profile: str) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child-build", str(release_id)]
    if profile:
        command += ["--child-profile", profile]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    for line in out.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise SystemExit(f"the build process exited with {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


# --- Downloads -----------------------------------------------------------------------------------------------


def _login(port: int, username: str) -> str:
    """Log in through the login form (GET for the CSRF token, POST); the Cookie header of the session."""
    from http.cookies import SimpleCookie

    jar: dict[str, str] = {}

    def keep(response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            jar.update({name: morsel.value for name, morsel in cookie.items()})

    origin = f"https://127.0.0.1:{port}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/login/", headers={"X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        html = response.read()
        assert response.status == 200, response.status
        keep(response)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert match, "no CSRF token on the login page"
        form = urllib.parse.urlencode(
            {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": match.group(1).decode()}
        )
        conn.request(
            "POST",
            "/login/",
            body=form,
            headers={
                "X-Forwarded-Proto": "https",
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
                "Origin": origin,
                "Referer": f"{origin}/login/",
            },
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 302, f"login answered {response.status}"
        keep(response)
    finally:
        conn.close()
    assert "sessionid" in jar, "no session after logging in"
    return "; ".join(f"{k}={v}" for k, v in jar.items())


@dataclass
class Download:
    ttfb: float  # seconds from sending the request to the first byte of the body
    seconds: float  # to the last byte
    size: int
    sha256_header: str


def _download(port: int, path: str, headers: dict[str, str], *, whole: bool) -> Download:
    """GET on a new connection; the body is read in 1 MiB pieces (and counted, not kept), or only its
    first byte when ``whole`` is false."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        start = time.perf_counter()
        conn.request("GET", path, headers={"X-Forwarded-Proto": "https", **headers})
        response = conn.getresponse()
        first = response.read(1)
        ttfb = time.perf_counter() - start
        assert response.status == 200, (path, response.status)
        assert first, f"{path}: empty body"
        size = len(first)
        if whole:
            buffer = memoryview(bytearray(1024 * 1024))
            while n := response.readinto(buffer):
                size += n
        seconds = time.perf_counter() - start
        return Download(ttfb, seconds, size, response.getheader("X-Content-SHA256") or "")
    finally:
        conn.close()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


# --- One size ------------------------------------------------------------------------------------------------


@dataclass
class Options:
    words: int | None
    workers: int
    threads: int
    profile: bool
    ttfb_repeats: int


def _words_for(count: int, opts: Options) -> int:
    if opts.words:
        return opts.words
    return SHORT_WORDS if count >= SHORT_TEXTS_FROM else TEXT_WORDS


def _check_disk(count: int, words: int, work: Path) -> None:
    need = count * (3 * words * 8.6 + 700) * DISK_COPIES
    free = shutil.disk_usage(work).free
    if need * 1.2 > free:
        raise SystemExit(f"{count:,} judgements need about {need / 1e9:.1f} GB of disk; {free / 1e9:.1f} GB free")


def _run_size(count: int, opts: Options, base_env: dict[str, str], work: Path) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection, connections
    from preference_collection import Server

    from accounts import services as accounts_services
    from accounts.models import Role
    from releases.models import Release, ReleaseFile
    from releases.recipe import Recipe

    words = _words_for(count, opts)
    _check_disk(count, words, work)
    data_dir = work / f"data-{count}"
    real_name = connections["default"].settings_dict["NAME"]
    connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = f"{real_name}_bench_releases"
    result: dict[str, Any] = {"judgements": count, "words": words}
    with throwaway_database():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version'), current_setting('shared_buffers')")
            result["postgres"], result["shared_buffers"] = cursor.fetchone() or ("?", "?")
        owner = accounts_services.user_create(actor=None, username="owner")
        project = accounts_services.project_create(actor=owner, name=f"Bench {count}", admin=owner)
        lead = accounts_services.user_create(actor=owner, username="datalead", password=PASSWORD)
        accounts_services.membership_add(actor=owner, project=project, user=lead, role=Role.DATA_LEAD)
        _, token = accounts_services.api_token_create(user=lead, name="bench", days=1)
        annotators = []
        for n in range(ANNOTATORS):
            user = accounts_services.user_create(actor=owner, username=f"annotator{n:02d}")
            accounts_services.membership_add(actor=owner, project=project, user=user, role=Role.ANNOTATOR)
            annotators.append(user.pk)

        print(f"[{count:,}] loading ({words} words a text) …", flush=True)
        loaded = load_comparisons(project=project, lead=lead, annotators=annotators, count=count, words=words)
        print(
            f"[{count:,}] loaded in {loaded.seconds:.0f} s, vacuum analyze {loaded.analyze_seconds:.0f} s", flush=True
        )
        result["load_s"] = loaded.seconds
        result["db_mb"] = loaded.database_mb
        result["text_kb"] = loaded.text_bytes / count / 1024

        recipe = Recipe.from_dict({"kind": "preference", "eval_fraction": 0.1, "leakage": "fail"}).canonical()
        release = Release.objects.create(
            project=project, kind="preference", name="bench", version=1, recipe=recipe, created_by=lead
        )
        test_name = settings.DATABASES["default"]["NAME"]
        url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{test_name}").geturl()
        env = {**base_env, "DATABASE_URL": url, "ENCLAVE_DATA_DIR": str(data_dir)}
        connection.close()
        try:
            print(f"[{count:,}] building …", flush=True)
            profile = str(work / f"build-{count}.prof") if opts.profile else ""
            built = run_child_build(release.pk, env, profile)
            if built["state"] != "built":
                raise SystemExit(f"the build ended {built['state']}: {built['failure_reason']}")
            result["build"] = built
            result["profile"] = profile
            files = list(ReleaseFile.objects.filter(release_id=release.pk))
            by_fmt: dict[str, dict[str, int]] = {}
            for f in files:
                entry = by_fmt.setdefault(f.fmt, {"rows": 0, "bytes": 0})
                entry["rows"] += (f.rows or 0) if f.fmt != "hf_dataset" else 0  # its .arrow files repeat the rows
                entry["bytes"] += f.size_bytes
            result["formats"] = by_fmt
            result["split_rows"] = {
                split: sum(f.rows or 0 for f in files if f.fmt == "trl_preference" and f.split == split)
                for split in ("train", "eval")
            }
            print(f"[{count:,}] built in {built['seconds']:.1f} s; downloading …", flush=True)

            train = next(f for f in files if f.path == "trl_preference/train.jsonl")
            export_dir = work / f"export-{count}"
            command = [sys.executable, "manage.py", "release_export"]
            begin = time.perf_counter()  # Django's start-up alone: a release that does not exist
            subprocess.run([*command, "999999999", str(export_dir)], cwd=ROOT, env=env, capture_output=True)  # noqa: S603
            result["export_startup_s"] = time.perf_counter() - begin
            begin = time.perf_counter()
            subprocess.run(  # noqa: S603
                [*command, str(release.pk), str(export_dir), "--format", "trl_preference"],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )  # fmt: skip
            result["export_s"] = time.perf_counter() - begin
            result["export_bytes"] = sum(p.stat().st_size for p in export_dir.rglob("*.jsonl"))
            shutil.rmtree(export_dir, ignore_errors=True)

            server = Server(env, opts.workers, opts.threads, work / f"gunicorn-{count}.log")
            try:
                cookie = _login(server.port, lead.username)
                page = f"/projects/{project.pk}/releases/{release.pk}/files/{train.pk}/"
                api = f"/api/v1/projects/{project.pk}/releases/{release.pk}/files/{train.pk}/"
                session = {"Cookie": cookie}
                bearer = {"Authorization": f"Token {token}"}
                # The first GET may reach a worker that has not served a request yet (gunicorn imports the
                # URLconf and the views on a worker's first request); the later ones show the steady state.
                first = [_download(server.port, page, session, whole=False).ttfb for _ in range(1 + opts.ttfb_repeats)]
                result["ttfb_cold_s"] = first[0]
                result["ttfb_s"] = _median(first[1:])
                result["ttfb_max_s"] = max(first[1:])
                whole = _download(server.port, page, session, whole=True)
                assert whole.size == train.size_bytes, (whole.size, train.size_bytes)
                assert whole.sha256_header == train.sha256
                result["download_mb_s"] = whole.size / 1e6 / whole.seconds
                by_api = [_download(server.port, api, bearer, whole=False).ttfb for _ in range(opts.ttfb_repeats)]
                result["ttfb_api_s"] = _median(by_api)
                whole = _download(server.port, api, bearer, whole=True)
                result["download_api_mb_s"] = whole.size / 1e6 / whole.seconds
            finally:
                server.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        connection.close()
    return result


# --- Table ---------------------------------------------------------------------------------------------------


def _rate(rows: int, size: int, seconds: float) -> tuple[float, float]:
    return (rows / seconds, size / 1e6 / seconds) if seconds else (0.0, 0.0)


def _row(r: dict[str, Any]) -> list[str]:
    built = r["build"]
    timers = built["build_stats"]["exporter_seconds"]
    formats = r["formats"]
    n = r["judgements"]
    trl = _rate(formats["trl_preference"]["rows"], formats["trl_preference"]["bytes"], timers["TrlPreferenceJsonl"])
    openai = _rate(
        formats["openai_preference"]["rows"], formats["openai_preference"]["bytes"], timers["OpenAiPreferenceJsonl"]
    )
    arrow = _rate(
        formats["parquet"]["rows"],
        formats["parquet"]["bytes"] + formats["hf_dataset"]["bytes"],
        timers["ArrowExporter"],
    )
    export_mb = r["export_bytes"] / 1e6
    return [
        f"{size_label(n)} ({r['words']} w)",
        f"{n:,}",
        f"{built['seconds']:,.1f}",
        f"{n / built['seconds']:,.0f}",
        f"{trl[0]:,.0f} / {trl[1]:,.0f}",
        f"{openai[0]:,.0f} / {openai[1]:,.0f}",
        f"{arrow[0]:,.0f} / {arrow[1]:,.0f}",
        f"{built['peak_mb']:,.0f} (+{built['peak_mb'] - built['baseline_mb']:,.0f})",
        f"{r['ttfb_s'] * 1000:,.1f} ({r['ttfb_cold_s'] * 1000:,.0f})",
        f"{r['download_mb_s']:,.0f}",
        f"{export_mb / r['export_s']:,.0f} ({r['export_s']:,.1f} s)",
    ]


HEADER = [
    "size",
    "judgements",
    "build s",
    "judgements/s",
    "TRL pref rows/s / MB/s",
    "OpenAI pref rows/s / MB/s",
    "Parquet+HF rows/s / MB/s",
    "peak RSS MB (growth)",
    "TTFB ms (cold)",
    "download MB/s",
    "release_export MB/s",
]


def _notes(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        built = r["build"]
        timers = built["build_stats"]["exporter_seconds"]
        exporters = sum(timers.values())
        trl = r["formats"]["trl_preference"]
        lines.append(
            f"{size_label(r['judgements'])}: text {r['text_kb']:.1f} KB and TRL row "
            f"{trl['bytes'] / trl['rows'] / 1024:.1f} KB "
            f"per judgement; rows train {r['split_rows']['train']:,} / eval {r['split_rows']['eval']:,}; "
            f"leaks {built['build_stats']['leaks']}; load {r['load_s']:.0f} s, database {r['db_mb'] / 1000:.2f} GB; "
            f"exporters {exporters:.1f} s of {built['seconds']:.1f} s "
            f"({', '.join(f'{k} {v:.1f}' for k, v in timers.items())}); "
            f"RSS before the build {built['baseline_now_mb']:.0f} MB, peak at {built['peak_at_s']:.0f} s, "
            f"anonymous RSS {built['baseline_anon_mb']:.0f} → {built['peak_anon_mb']:.0f} MB (sampled every 0.2 s); "
            f"TTFB warm max {r['ttfb_max_s'] * 1000:.1f} ms, API (token) {r['ttfb_api_s'] * 1000:.1f} ms, "
            f"API download {r['download_api_mb_s']:,.0f} MB/s; release_export start-up alone "
            f"{r['export_startup_s']:.1f} s"
        )
    return lines


def _targets(results: list[dict[str, Any]]) -> list[str]:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = []
    for r in results:
        built = r["build"]
        timers = built["build_stats"]["exporter_seconds"]
        trl_rows = r["formats"]["trl_preference"]["rows"]
        end_to_end = r["judgements"] / built["seconds"]
        exporter = trl_rows / timers["TrlPreferenceJsonl"]
        lines.append(
            f"{size_label(r['judgements'])}: TRL preference JSONL ≥ {TARGET_ROWS_PER_S:,} rows/s: "
            f"whole build {end_to_end:,.0f} {mark(end_to_end >= TARGET_ROWS_PER_S)}, "
            f"exporter alone {exporter:,.0f} {mark(exporter >= TARGET_ROWS_PER_S)}; "
            f"first byte < {TARGET_TTFB_S:g} s: {r['ttfb_cold_s'] * 1000:,.0f} ms cold, "
            f"{r['ttfb_s'] * 1000:,.1f} ms warm {mark(max(r['ttfb_cold_s'], r['ttfb_s']) < TARGET_TTFB_S)}"
        )
    if len(results) > 1:
        small, large = results[0], results[-1]
        growth = large["build"]["peak_mb"] - small["build"]["peak_mb"]
        lines.append(
            f"peak RSS growth {size_label(small['judgements'])} → {size_label(large['judgements'])} "
            f"< {TARGET_GROWTH_MB} MB: "
            f"{growth:+,.0f} MB {mark(growth < TARGET_GROWTH_MB)}"
            + ("" if large["judgements"] >= 1_000_000 else " (the target is stated up to 1M)")
        )
    return lines


# --- Main ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--words", type=int, default=None, help=f"words a text (default {TEXT_WORDS}, "
                        f"{SHORT_WORDS} from {SHORT_TEXTS_FROM:,} judgements)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--ttfb-repeats", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="cProfile the build; print the top functions")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 judgements")
    parser.add_argument("--child-build", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build:
        _child_build(args.child_build, args.child_profile)
        return
    if args.quick and args.sizes == parser.get_default("sizes"):
        args.sizes = [2000]

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("This benchmark runs on PostgreSQL only: set DATABASE_URL=postgres://…")
    redis_url = os.environ.get("REDIS_URL", "")
    if redis_url and (urllib.parse.urlsplit(redis_url).path.strip("/") or "0") in {"0", "15"}:
        raise SystemExit("REDIS_URL: use a database of its own, not 0 and not 15 (the test suite's)")

    work = Path(tempfile.mkdtemp(prefix="enclave-bench-releases-"))
    os.environ["ENCLAVE_DATA_DIR"] = str(work / "parent")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"
    import django

    django.setup()

    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enclave.settings.production",
        "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_PROXY_SSL_HEADER": "true",  # as docker-compose.yml: the proxy terminates TLS
        "STATIC_ROOT": str(work / "static"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    opts = Options(
        words=args.words, workers=args.workers, threads=args.threads, profile=args.profile,
        ttfb_repeats=args.ttfb_repeats,
    )  # fmt: skip
    try:
        collect_static(base_env)
        results = []
        for count in args.sizes:
            result = _run_size(count, opts, base_env, work)
            results.append(result)
            print(json.dumps(result), flush=True)  # kept if a later size fails
            if result.get("profile"):
                _print_profile(result["profile"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    try:
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty"],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown"
    last = results[-1]
    print(
        f"\nCode {revision}. PostgreSQL {last['postgres']} (shared_buffers {last['shared_buffers']}) on this "
        f"machine; the build runs alone in a child process with production settings (release_build, as the "
        f"Celery task calls it); one pairwise judgement per comparison (k = 1), two candidates, so judgements = "
        f"comparisons = rows; eval fraction 0.1, leakage policy fail. Per format: rows (train + eval) and bytes "
        f"of its files over the seconds spent in its exporter (Parquet+HF: the Parquet rows, the bytes of the "
        f"Parquet files and the datasets directory). Peak RSS: ru_maxrss of the build process (growth: over the "
        f"same process just before the build; PostgreSQL's own memory is not in it). TTFB: median of "
        f"{args.ttfb_repeats} GETs of the TRL train JSONL on the release_file page (session of a data lead, "
        f"gunicorn {args.workers}×{args.threads}, production settings, loopback), cold: the first GET. "
        f"MB = 10^6 bytes. “Other tool”: {OTHER_TOOL} at 50k on the same machine."
    )
    print_columns("Preference release: build and export", HEADER, [_row(r) for r in results])
    print()
    for line in _notes(results):
        print(f"- {line}")
    print("\nTargets")
    for line in _targets(results):
        print(f"- {line}")


def _print_profile(path: str) -> None:
    import io
    import pstats

    if not Path(path).exists():
        return
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(35)
    print(out.getvalue())


if __name__ == "__main__":
    main()
