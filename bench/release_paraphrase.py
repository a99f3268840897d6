"""What the paraphrase check adds to a preference release build (target: at most twice the build without it).

A throwaway PostgreSQL database is loaded as ``release_export.py`` loads it (comparisons of two candidates and
one pairwise judgement each, by COPY), and every item gets a stored prompt embedding seeded directly (no model
runs): unit vectors of the packaged model's width in topic clusters, ``topic + noise``, so prompts of one topic
have cosine ~0.45 and the closest pairs of different prompts reach ~0.7, below the default threshold 0.75, as
different questions of one domain do with all-MiniLM-L6-v2 (``releases/paraphrase.py``). The model hash is the
packaged model's, so the build finds them.

Builds, each in a child process with production settings (``release_export.run_child_build``), in order:

1. MinHash only (paraphrase threshold 0), leakage "fail": the baseline.
2. MinHash and paraphrases (threshold 0.75), leakage "fail": every training item compared with every evaluation
   item, nothing found: the check's own cost.
3. and 4. After 1 % of the training items were given a paraphrase of an evaluation item's vector (cosine ~0.94),
   both again under "move to eval": MinHash finds nothing; the paraphrase check finds them, repeats until
   nothing moves, and the rows are written a second time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave \\
        .venv/bin/python bench/release_paraphrase.py --judgements 100000
    ... bench/release_paraphrase.py --quick             (2,000 judgements, a smoke run)
"""

import argparse
import os
import shutil
import sys
import tempfile
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import print_columns
from release_export import ANNOTATORS, PASSWORD, load_comparisons, run_child_build

TOPICS = 200
NOISE = 1.1  # the noise's norm against the topic's 1: cosine within a topic ~ 1 / (1 + NOISE²)
PARAPHRASE_NOISE = 0.35  # cosine to the evaluation item paraphrased ~ 1 / sqrt(1 + 0.35²)
PARAPHRASE_SHARE = 0.01


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _store(rows: list[tuple[int, str]], vectors: np.ndarray, model_hash: str) -> None:
    """PromptEmbedding rows of these items (id, content hash) by COPY, as the embedding task would store them."""
    from django.db import connection
    from django.utils import timezone

    from releases.embeddings import quantise
    from releases.models import PromptEmbedding

    codes, scales = quantise(vectors)
    table = PromptEmbedding._meta.db_table
    now = timezone.now()
    raw = connection.connection
    assert raw is not None
    columns = "item_id, model_hash, content_hash, dim, scale, vector, created_at"
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for (item_id, content_hash), code, scale in zip(rows, codes, scales, strict=True):
            copy.write_row((item_id, model_hash, content_hash, codes.shape[1], float(scale), code.tobytes(), now))


def seed_embeddings(project_id: int, model_hash: str, dim: int) -> np.ndarray:
    """Every item's vector, in topic clusters; returns them in item id order (for the paraphrases later)."""
    from annotation.models import Item

    rows = list(Item.objects.filter(project_id=project_id).order_by("id").values_list("id", "content_hash"))
    rng = np.random.default_rng(27)
    topics = _unit(rng.standard_normal((TOPICS, dim)))
    vectors = _unit(
        topics[rng.integers(TOPICS, size=len(rows))] + rng.standard_normal((len(rows), dim)) * NOISE / np.sqrt(dim)
    ).astype(np.float32)
    for start in range(0, len(rows), 20_000):
        _store(rows[start : start + 20_000], vectors[start : start + 20_000], model_hash)
    return vectors


def paraphrase_some(project_id: int, release_id: int, vectors: np.ndarray, model_hash: str) -> int:
    """Give ``PARAPHRASE_SHARE`` of the release's training items a paraphrase of an evaluation item's vector."""
    from annotation.models import Item
    from releases.models import PromptEmbedding, ReleaseItem

    ids = list(Item.objects.filter(project_id=project_id).order_by("id").values_list("id", "content_hash"))
    row_of = {item_id: n for n, (item_id, _) in enumerate(ids)}
    placed = dict(ReleaseItem.objects.filter(release_id=release_id).values_list("item_id", "split"))
    train = sorted(i for i, s in placed.items() if s == "train")
    evaluated = sorted(i for i, s in placed.items() if s == "eval")
    rng = np.random.default_rng(4)
    chosen = sorted(rng.choice(train, size=max(1, int(len(train) * PARAPHRASE_SHARE)), replace=False).tolist())
    sources = rng.choice(evaluated, size=len(chosen))
    dim = vectors.shape[1]
    noise = rng.standard_normal((len(chosen), dim)) * PARAPHRASE_NOISE / np.sqrt(dim)
    new = _unit(vectors[[row_of[int(s)] for s in sources]] + noise).astype(np.float32)
    PromptEmbedding.objects.filter(item_id__in=chosen).delete()
    _store([ids[row_of[i]] for i in chosen], new, model_hash)
    return len(chosen)


BUILDS = (
    ("MinHash only", 0.0, "fail"),
    ("MinHash + paraphrase", 0.75, "fail"),
    ("MinHash only, 1 % paraphrased", 0.0, "move_to_eval"),
    ("MinHash + paraphrase, 1 % paraphrased", 0.75, "move_to_eval"),
)


def run(count: int, words: int, base_env: dict[str, str], work: Path) -> list[dict[str, Any]]:
    from _common import throwaway_database
    from django.conf import settings
    from django.db import connection, connections

    from accounts import services as accounts_services
    from accounts.models import Role
    from releases.embeddings import embedding_model_hash
    from releases.models import Release
    from releases.recipe import Recipe

    model_hash = embedding_model_hash()
    real_name = connections["default"].settings_dict["NAME"]
    connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = f"{real_name}_bench_paraphrase"
    results: list[dict[str, Any]] = []
    with throwaway_database():
        owner = accounts_services.user_create(actor=None, username="owner")
        project = accounts_services.project_create(actor=owner, name=f"Bench {count}", admin=owner)
        lead = accounts_services.user_create(actor=owner, username="datalead", password=PASSWORD)
        accounts_services.membership_add(actor=owner, project=project, user=lead, role=Role.DATA_LEAD)
        annotators = []
        for n in range(ANNOTATORS):
            user = accounts_services.user_create(actor=owner, username=f"annotator{n:02d}")
            accounts_services.membership_add(actor=owner, project=project, user=user, role=Role.ANNOTATOR)
            annotators.append(user.pk)
        print(f"loading {count:,} judgements ({words} words a text) …", flush=True)
        load_comparisons(project=project, lead=lead, annotators=annotators, count=count, words=words)
        vectors = seed_embeddings(project.pk, model_hash, 384)
        test_name = settings.DATABASES["default"]["NAME"]
        url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{test_name}").geturl()
        first_release = 0
        for version, (label, threshold, leakage) in enumerate(BUILDS, 1):
            if version == 3:
                changed = paraphrase_some(project.pk, first_release, vectors, model_hash)
                print(f"{changed:,} training items given a paraphrase of an evaluation item", flush=True)
            recipe = Recipe.from_dict(
                {"kind": "preference", "eval_fraction": 0.1, "leakage": leakage, "paraphrase_threshold": threshold}
            ).canonical()
            release = Release.objects.create(
                project=project, kind="preference", name="bench", version=version, recipe=recipe, created_by=lead
            )
            first_release = first_release or release.pk
            env = {**base_env, "DATABASE_URL": url, "ENCLAVE_DATA_DIR": str(work / f"data-{version}")}
            connection.close()
            print(f"building: {label} …", flush=True)
            built = run_child_build(release.pk, env, "")
            if built["state"] != "built":
                raise SystemExit(f"the build ended {built['state']}: {built['failure_reason']}")
            results.append({"label": label, "threshold": threshold, "leakage": leakage, **built})
            print(f"  {built['seconds']:.1f} s", flush=True)
    return results


def _row(result: dict[str, Any], baseline: float) -> list[str]:
    stats = result["build_stats"]
    check = stats.get("paraphrase_check")
    return [
        result["label"],
        result["leakage"],
        f"{result['threshold']:g}" if result["threshold"] else "off",
        f"{stats['leaks']:,}",
        f"{result['seconds']:.1f}",
        f"{check['seconds']:.1f}" if check else "—",
        f"{result['seconds'] / baseline:.2f}×",
        f"{result['peak_mb']:.0f}",
        "yes" if result.get("torch_imported") else "no",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgements", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=300, help="words a text (prompt and each candidate)")
    parser.add_argument("--quick", action="store_true", help="2,000 judgements")
    args = parser.parse_args()
    count = 2000 if args.quick else args.judgements
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise SystemExit("This benchmark runs on PostgreSQL only: set DATABASE_URL=postgres://…")
    work = Path(tempfile.mkdtemp(prefix="enclave-bench-paraphrase-"))
    os.environ["ENCLAVE_DATA_DIR"] = str(work / "parent")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"
    import django

    django.setup()
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enclave.settings.production",
        "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_PROXY_SSL_HEADER": "true",
        "STATIC_ROOT": str(work / "static"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    try:
        results = run(count, args.words, base_env, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ["build", "leakage", "threshold", "leaks", "build s", "paraphrase check s", "vs MinHash only"]
    header += ["peak MB", "torch"]
    rows = [_row(r, results[0]["seconds"]) for r in results[:2]]
    rows += [_row(r, results[2]["seconds"]) for r in results[2:]]
    print_columns(f"Preference release of {count:,} judgements: the paraphrase check", header, rows)
    ratio = results[1]["seconds"] / results[0]["seconds"]
    print(f"\nThe check adds {ratio:.2f}× to the build (target ≤ 2×): {'met' if ratio <= 2 else 'missed'}.")


if __name__ == "__main__":
    main()
