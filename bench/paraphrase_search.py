"""Nearest neighbours for the paraphrase check: exact batched search in numpy (what ``releases.paraphrase`` does)
against ``faiss-cpu`` (``IndexFlatIP``, exact) and ``hnswlib`` (HNSW, approximate), when they are importable
(they are not the project's dependencies: install them beside it to compare, e.g. ``pip install --target DIR``
and ``PYTHONPATH=DIR``).

The vectors are those of a 100,000-judgement release with a 10 % evaluation split: 10,000 evaluation and 90,000
training prompts of width 384 in 200 topic clusters (cosine ~0.45 within a topic), 900 training prompts made
paraphrases of evaluation ones (cosine ~0.94); all int8-quantised as stored. Each method finds, for every
training prompt, its closest evaluation prompt and keeps the pairs at 0.75 or above.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python bench/paraphrase_search.py --threads 1
"""

import argparse
import importlib
import time

import numpy as np

THRESHOLD = 0.75
DIM = 384
PAIR_BUDGET = 4_000_000


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _codes(vectors: np.ndarray) -> np.ndarray:
    scales = np.abs(vectors).max(axis=1) / 127
    return np.clip(np.rint(vectors / scales[:, None]), -127, 127).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(27)
    topics = _unit(rng.standard_normal((200, DIM)))

    def draw(n: int) -> np.ndarray:
        return _unit(topics[rng.integers(200, size=n)] + rng.standard_normal((n, DIM)) * 1.1 / np.sqrt(DIM))

    evaluation, training = draw(10_000), draw(90_000)
    sources = rng.integers(len(evaluation), size=900)
    training[:900] = _unit(evaluation[sources] + rng.standard_normal((900, DIM)) * 0.35 / np.sqrt(DIM))
    eval_codes, train_codes = _codes(evaluation), _codes(training)
    eval_norms = np.sqrt(np.square(eval_codes, dtype=np.float64).sum(axis=1))
    train_norms = np.sqrt(np.square(train_codes, dtype=np.float64).sum(axis=1))
    print(f"{len(training):,} training × {len(evaluation):,} evaluation prompts, width {DIM}, {args.threads} thread(s)")

    began = time.perf_counter()
    inverse = (1 / eval_norms).astype(np.float32)
    found: set[int] = set()
    step = PAIR_BUDGET // len(eval_codes)
    for start in range(0, len(train_codes), step):
        dots = train_codes[start : start + step] @ eval_codes.T
        best = np.argmax(dots * inverse, axis=1)
        similarity = dots[np.arange(len(best)), best] / (train_norms[start : start + step] * eval_norms[best])
        found.update((np.flatnonzero(similarity >= THRESHOLD) + start).tolist())
    print(f"exact, numpy (int8 codes, batched): {time.perf_counter() - began:.2f} s, {len(found)} pairs")

    try:
        faiss = importlib.import_module("faiss")
    except ImportError:
        print("faiss-cpu: not installed")
    else:
        faiss.omp_set_num_threads(args.threads)
        began = time.perf_counter()
        index = faiss.IndexFlatIP(DIM)
        index.add(evaluation.astype(np.float32))
        scores, _ = index.search(training.astype(np.float32), 1)
        pairs = int((scores[:, 0] >= THRESHOLD).sum())
        print(f"faiss-cpu IndexFlatIP (exact): {time.perf_counter() - began:.2f} s, {pairs} pairs")

    try:
        hnswlib = importlib.import_module("hnswlib")
    except ImportError:
        print("hnswlib: not installed")
    else:
        began = time.perf_counter()
        graph = hnswlib.Index(space="ip", dim=DIM)
        graph.init_index(max_elements=len(evaluation), ef_construction=200, M=16)
        graph.set_num_threads(args.threads)
        graph.add_items(evaluation.astype(np.float32), np.arange(len(evaluation)))
        built = time.perf_counter() - began
        graph.set_ef(50)
        began = time.perf_counter()
        _, distances = graph.knn_query(training.astype(np.float32), k=1)
        queried = time.perf_counter() - began
        hits = set(np.flatnonzero(1 - distances[:, 0] >= THRESHOLD).tolist())
        print(
            f"hnswlib HNSW (M 16, ef 50): build {built:.2f} s + query {queried:.2f} s, {len(hits)} pairs, "
            f"recall {len(hits & found) / max(1, len(found)):.4f}"
        )


if __name__ == "__main__":
    main()
