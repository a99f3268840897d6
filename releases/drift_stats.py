"""The statistics of an eval-set drift report (``releases.drift``), pure: numpy and scipy on counts, lengths and
prompt embeddings, no database. Every sample is drawn with a fixed seed, so one input gives one report."""

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

SEED = 20_261_207
MMD_SAMPLE = 1000  # prompts a side in the MMD and its permutations
MMD_PERMUTATIONS = 200
FARTHEST = 20
DISTINCT = 0.9  # two recent prompts this close (cosine) are one question in other words: the farthest list shows one
FARTHEST_SAMPLE = 5000  # recent prompts searched for the farthest from any eval prompt
MIN_SIDE = 5  # fewer items on a side: the tests are not run
_TOKEN = re.compile(r"\w+|[^\w\s]")


def token_count(text: str) -> int:
    """Prompt length in tokens: words and punctuation marks (a regex, not the embedding model's tokenizer, so
    the default workers need no model; within a few percent of a subword count's ranking)."""
    return len(_TOKEN.findall(text))


def _shares(counts: Counter[str], categories: Sequence[str]) -> list[float]:
    """Shares with half a count added to every category, so an empty one has a finite log in the PSI."""
    total = sum(counts.values()) + 0.5 * len(categories)
    return [(counts.get(c, 0) + 0.5) / total for c in categories]


def categorical_drift(eval_counts: Counter[str], recent_counts: Counter[str]) -> dict[str, Any]:
    """One metadata key: its values' shares on both sides, the population stability index (sum of
    (recent - eval) * ln(recent / eval) over values) and the chi-square test of homogeneity's p-value on the
    2-by-values table. ``None`` figures when a side has fewer than ``MIN_SIDE`` items or a single value."""
    categories = sorted(set(eval_counts) | set(recent_counts), key=lambda c: (-recent_counts[c] - eval_counts[c], c))
    n_eval, n_recent = sum(eval_counts.values()), sum(recent_counts.values())
    rows = [
        {
            "value": c,
            "eval": eval_counts.get(c, 0),
            "recent": recent_counts.get(c, 0),
            "eval_share": eval_counts.get(c, 0) / n_eval if n_eval else None,
            "recent_share": recent_counts.get(c, 0) / n_recent if n_recent else None,
        }
        for c in categories
    ]
    psi = p_value = None
    if n_eval >= MIN_SIDE and n_recent >= MIN_SIDE and len(categories) > 1:
        e, r = _shares(eval_counts, categories), _shares(recent_counts, categories)
        psi = float(sum((b - a) * math.log(b / a) for a, b in zip(e, r, strict=True)))
        table = np.array([[eval_counts.get(c, 0) for c in categories], [recent_counts.get(c, 0) for c in categories]])
        p_value = float(stats.chi2_contingency(table).pvalue)
    return {"values": rows, "psi": psi, "chi2_p": p_value, "eval_n": n_eval, "recent_n": n_recent}


def length_drift(eval_lengths: Sequence[int], recent_lengths: Sequence[int]) -> dict[str, Any]:
    """Prompt lengths in tokens: quartiles of both sides and the two-sample Kolmogorov-Smirnov statistic and p."""

    def quartiles(values: Sequence[int]) -> list[float] | None:
        return [float(q) for q in np.percentile(values, [25, 50, 75])] if len(values) else None

    out: dict[str, Any] = {
        "eval_quartiles": quartiles(eval_lengths),
        "recent_quartiles": quartiles(recent_lengths),
        "ks": None,
        "p": None,
    }
    if len(eval_lengths) >= MIN_SIDE and len(recent_lengths) >= MIN_SIDE:
        result = stats.ks_2samp(np.asarray(eval_lengths), np.asarray(recent_lengths))
        out["ks"], out["p"] = float(result.statistic), float(result.pvalue)
    return out


def _sample(vectors: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if len(vectors) <= size:
        return vectors
    return vectors[np.sort(rng.choice(len(vectors), size=size, replace=False))]


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = MMD_PERMUTATIONS) -> dict[str, Any]:
    """Maximum mean discrepancy of two samples of unit vectors (RBF kernel, bandwidth by the median heuristic:
    the median squared distance of the pooled sample) with its permutation p-value, (1 + permutations at least
    as large) / (1 + permutations). At most ``MMD_SAMPLE`` vectors a side; the seed is fixed."""
    rng = np.random.default_rng(SEED)
    x, y = _sample(x, MMD_SAMPLE, rng), _sample(y, MMD_SAMPLE, rng)
    pooled = np.vstack([x, y]).astype(np.float64)
    squared = np.maximum(0.0, 2.0 - 2.0 * (pooled @ pooled.T))  # unit vectors: |a − b|² = 2 − 2 a·b
    n = len(pooled)
    median = float(np.median(squared[np.triu_indices(n, 1)])) or 1.0
    kernel = np.exp(-squared / median)  # exp(−d² / 2σ²) with 2σ² = the median
    np.fill_diagonal(kernel, 0.0)
    labels = np.zeros((n, permutations + 1))
    labels[: len(x), 0] = 1.0
    for column in range(1, permutations + 1):
        labels[rng.permutation(n)[: len(x)], column] = 1.0
    others = 1.0 - labels
    within_x = np.einsum("ip,ip->p", labels, kernel @ labels)
    within_y = np.einsum("ip,ip->p", others, kernel @ others)
    across = np.einsum("ip,ip->p", labels, kernel @ others)
    nx, ny = len(x), len(y)
    mmd2 = within_x / (nx * (nx - 1)) + within_y / (ny * (ny - 1)) - 2 * across / (nx * ny)
    p_value = (1 + int(np.sum(mmd2[1:] >= mmd2[0]))) / (1 + permutations)
    return {"mmd2": float(mmd2[0]), "p": p_value, "bandwidth_sq": median / 2, "sample": [nx, ny]}


def embedding_drift(eval_vectors: np.ndarray, recent_vectors: np.ndarray) -> dict[str, Any]:
    """The centroid cosine distance (1 - cosine of the two sides' mean embeddings) and the MMD test."""
    if len(eval_vectors) < MIN_SIDE or len(recent_vectors) < MIN_SIDE:
        return {"centroid_distance": None, "mmd": None}
    a, b = eval_vectors.mean(axis=0), recent_vectors.mean(axis=0)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))
    return {"centroid_distance": 1.0 - cosine, "mmd": mmd_test(eval_vectors, recent_vectors)}


def farthest(
    eval_ids: np.ndarray, eval_vectors: np.ndarray, recent_ids: np.ndarray, recent_vectors: np.ndarray
) -> list[tuple[int, int, float]]:
    """The ``FARTHEST`` recent prompts least similar to every eval prompt: (recent id, nearest eval id, cosine
    similarity to it), least similar first; among at most ``FARTHEST_SAMPLE`` recent prompts. A prompt within
    ``DISTINCT`` cosine of one listed already (the same question in other words) is passed over, so the list shows
    twenty things the eval set misses, not one thing twenty times."""
    if not len(eval_vectors) or not len(recent_vectors):
        return []
    rng = np.random.default_rng(SEED)
    if len(recent_vectors) > FARTHEST_SAMPLE:
        sample = np.sort(rng.choice(len(recent_vectors), size=FARTHEST_SAMPLE, replace=False))
        recent_ids, recent_vectors = recent_ids[sample], recent_vectors[sample]
    best = np.full(len(recent_vectors), -2.0, dtype=np.float32)
    nearest = np.zeros(len(recent_vectors), dtype=np.int64)
    for start in range(0, len(eval_vectors), 4096):  # bounded memory: a block of eval prompts at a time
        block = recent_vectors @ eval_vectors[start : start + 4096].T
        where = block.argmax(axis=1)
        top = block[np.arange(len(block)), where]
        better = top > best
        best[better], nearest[better] = top[better], where[better] + start
    chosen: list[int] = []
    for i in np.argsort(best, kind="stable").tolist():
        if chosen and float((recent_vectors[chosen] @ recent_vectors[i]).max()) >= DISTINCT:
            continue
        chosen.append(i)
        if len(chosen) == FARTHEST:
            break
    return [(int(recent_ids[i]), int(eval_ids[nearest[i]]), float(best[i])) for i in chosen]
