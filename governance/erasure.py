"""Erasure of a data subject's text from the database: where text lives, the search, the rewrite and the
taint closure (what was built from the erased text and must be rebuilt).

Every text column that can hold what people or models wrote about a customer is listed in ``SOURCES``; JSON
columns are searched string by string on the server (``jsonb_path_query``), so a match never depends on how
JSON escapes a character. The files are ``governance.erasure_files``; the use cases ``governance.services``."""

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models
from django.db.models.expressions import RawSQL

from accounts.models import Project
from annotation.models import Annotation, Draft, ImportBatch, Item, ItemState, Review
from evaluation.models import Candidate, DeploymentTarget, Evaluation, EvaluationSystem, GenerationPrompt, GenerationRun
from governance.matching import Matcher, context, limit_statements, replace, replace_in, strings_in
from governance.models import TaintKind
from preferences.models import Adjudication, Judgement
from releases.models import PromptEmbedding, Release, ReleaseItem
from training.models import Adapter, JobLogLine, TrainingJob


@dataclass(frozen=True)
class Source:
    """Text columns of one table: where its project is and which item a row belongs to (None: no item)."""

    model: type[models.Model]
    text_fields: tuple[str, ...]
    json_fields: tuple[str, ...]
    project: str
    item: str | None
    label: str

    @property
    def name(self) -> str:
        return self.model._meta.label_lower

    @property
    def fields(self) -> tuple[str, ...]:
        return self.text_fields + self.json_fields


SOURCES: tuple[Source, ...] = (
    Source(Item, ("response", "external_id", "hold_reason"), ("messages", "candidates", "metadata"),
           "project_id", "id", "item"),
    Source(Annotation, ("response", "original_response", "note"), ("history",), "item__project_id", "item_id",
           "annotation"),
    Source(Review, ("comment", "edited_response"), (), "annotation__item__project_id", "annotation__item_id", "review"),
    Source(Draft, (), ("data",), "item__project_id", "item_id", "draft"),
    Source(Judgement, ("rationale",), (), "item__project_id", "item_id", "judgement"),
    Source(Adjudication, ("note",), (), "item__project_id", "item_id", "adjudication"),
    Source(ImportBatch, ("failure_reason",), ("errors", "duplicates", "uncertain"), "project_id", None, "import"),
    Source(GenerationPrompt, ("external_id",), ("messages", "metadata"), "run__project_id", "item_id",
           "generation prompt"),
    Source(Candidate, ("text",), (), "run__project_id", None, "generated answer"),
    Source(JobLogLine, ("line",), (), "job__project_id", None, "training log line"),
    Source(TrainingJob, ("failure_reason",), (), "project_id", None, "training job"),
    Source(GenerationRun, ("failure_reason",), (), "project_id", None, "generation run"),
    Source(Evaluation, ("failure_reason",), (), "project_id", None, "evaluation"),
    Source(Release, ("failure_reason",), (), "project_id", None, "failed release"),  # a built one has none
)  # fmt: skip


@dataclass(frozen=True)
class Hit:
    """One field of one row that holds a match; ``literals`` are the matched texts (never stored)."""

    source: Source
    pk: int
    project_id: int
    item_id: int | None
    field: str
    matches: int
    shown: tuple[str, str, str]  # context before, the match, after: for the preview page only

    @property
    def key(self) -> str:
        return f"{self.source.name}.{self.field}"

    @property
    def object_label(self) -> str:
        return f"{self.source.label} #{self.pk}"

    @property
    def before(self) -> str:
        return self.shown[0]

    @property
    def match(self) -> str:
        return self.shown[1]

    @property
    def after(self) -> str:
        return self.shown[2]


@dataclass
class Found:
    hits: list[Hit] = field(default_factory=list)
    literals: set[str] = field(default_factory=set)

    @property
    def matches(self) -> int:
        return sum(hit.matches for hit in self.hits)

    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for hit in self.hits:
            counts[hit.key] += hit.matches
        return dict(sorted(counts.items()))

    def item_ids(self) -> set[int]:
        return {hit.item_id for hit in self.hits if hit.item_id is not None}

    def project_ids(self) -> set[int]:
        return {hit.project_id for hit in self.hits}


def _where(source: Source, column: str, json: bool, matcher: Matcher) -> tuple[str, list[Any]]:
    table = source.model._meta.db_table
    expression = f'"{table}"."{column}"'
    if not json:
        return matcher.condition(expression)
    condition, params = matcher.condition("v #>> '{}'")
    return (  # names from _meta, the term a parameter
        f"EXISTS (SELECT 1 FROM jsonb_path_query({expression}, 'strict $.**') AS v "  # noqa: S608
        f"WHERE jsonb_typeof(v) = 'string' AND {condition})",
        params,
    )


def _rows(source: Source, matcher: Matcher, project_ids: Sequence[int], *, lock: bool) -> Iterator[dict[str, Any]]:
    """The rows of ``source`` in the projects where some field matches, each with its values."""
    manager = source.model._default_manager
    for name in source.fields:
        column = source.model._meta.get_field(name).column  # type: ignore[union-attr]  # a concrete field
        queryset = manager.filter(**{f"{source.project}__in": list(project_ids)}).order_by("pk")
        if connection.vendor == "postgresql":
            sql, params = _where(source, str(column), name in source.json_fields, matcher)
            hit = RawSQL(sql, params, output_field=models.BooleanField())  # noqa: S611 - names from _meta
            queryset = queryset.annotate(_hit=hit).filter(_hit=True)
        elif name not in source.json_fields:  # SQLite (a trial install): exact text only, JSON checked in Python
            queryset = queryset.filter(**{f"{name}__contains": matcher.term})
        if lock:
            queryset = queryset.select_for_update(of=("self",))
        values = ["pk", source.project, *source.fields] + ([source.item] if source.item else [])
        yield from queryset.values(*values)


def search(matcher: Matcher, project_ids: Sequence[int], *, lock: bool = False) -> Found:
    """Every field of every row in the projects that holds a match, with the matched literals. Call it inside a
    transaction (``lock``: the erasure's), where no statement may run past the timeout."""
    limit_statements()
    found = Found()
    for source in SOURCES:
        rows: dict[int, dict[str, Any]] = {}
        for row in _rows(source, matcher, project_ids, lock=lock):
            rows.setdefault(row["pk"], row)
        for row in rows.values():
            for name in source.fields:
                value = row[name]
                texts = list(strings_in(value)) if name in source.json_fields else ([value] if value else [])
                if not texts:
                    continue
                total, shown = 0, None
                for text, literals in zip(texts, matcher.found(texts), strict=True):
                    if not literals:
                        continue
                    found.literals.update(literals)
                    total += replace(text, literals)[1]
                    shown = shown or context(text, literals[0])
                if total and shown:
                    found.hits.append(
                        Hit(source, row["pk"], row[source.project], row[source.item] if source.item else None, name,
                            total, shown)
                    )  # fmt: skip
    return found


def rewrite(found: Found, literals: Sequence[str]) -> dict[str, int]:
    """Replace the literals in every hit's field (rows already locked by ``search(lock=True)``); items that held
    a match, or whose annotations, judgements or drafts did, go on hold so no queue or later release takes them.
    Returns replacements per ``table.field``."""
    replaced: Counter[str] = Counter()
    by_row: dict[tuple[Source, int], list[str]] = defaultdict(list)
    for hit in found.hits:
        by_row[(hit.source, hit.pk)].append(hit.field)
    for (source, pk), names in by_row.items():
        row = source.model._default_manager.get(pk=pk)
        for name in names:
            value = getattr(row, name)
            if name in source.json_fields:
                texts = list(strings_in(value))
                new, count = replace_in(value, {text: list(literals) for text in texts})
            else:
                new, count = replace(value, literals)
            setattr(row, name, new)
            replaced[f"{source.name}.{name}"] += count
        row.save(update_fields=names)
    return dict(sorted(replaced.items()))


def hold_items(item_ids: Iterable[int], erasure_pk: int) -> int:
    """Put the items on hold with a reason naming the erasure, and give each a content hash of its new text
    (the old one was of the erased text, and would confirm a guessed value)."""
    count = 0
    for item in Item.objects.filter(pk__in=sorted(item_ids)).order_by("pk"):
        text = json.dumps([item.messages, item.response, item.candidates], sort_keys=True, ensure_ascii=False)
        item.content_hash = hashlib.sha256(
            f"erased item {item.pk}\n{text}".encode("utf-8", "surrogatepass")
        ).hexdigest()
        item.state = ItemState.ON_HOLD
        item.hold_reason = f"Erased (erasure #{erasure_pk}): left out of the queue and of later releases."
        item.save(update_fields=["content_hash", "state", "hold_reason"])
        count += 1
    return count


def drop_embeddings(item_ids: Iterable[int]) -> int:
    """Delete the prompt embeddings of the erased items: a vector of the erased text would still say something
    of it. The next embedding run embeds the rewritten text."""
    deleted, _ = PromptEmbedding.objects.filter(item_id__in=sorted(item_ids)).delete()
    return int(deleted)


# --- Taint closure -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tainted:
    kind: str
    pk: int
    project_id: int
    label: str
    why: str


def taint_closure(
    *, item_ids: set[int], release_ids: set[int], run_ids: set[int], project_ids: Sequence[int]
) -> list[Tainted]:
    """What was built from erased text: releases holding an affected item (or a rewritten file), the training
    jobs and adapters made from them, evaluations that judged those adapters or generated the erased answers,
    and the deployment targets serving a tainted adapter now."""
    tainted: list[Tainted] = []
    holding = set(ReleaseItem.objects.filter(item_id__in=item_ids).values_list("release_id", flat=True))
    releases = Release.objects.filter(pk__in=holding | release_ids).order_by("pk")
    for release in releases:
        why = "holds erased items" if release.pk in holding else "a file held erased text"
        tainted.append(Tainted(TaintKind.RELEASE, release.pk, release.project_id, f"{release} (#{release.pk})", why))
    release_pks = [r.pk for r in releases]
    for job in TrainingJob.objects.filter(release_id__in=release_pks).order_by("pk"):
        tainted.append(
            Tainted(TaintKind.TRAINING_JOB, job.pk, job.project_id, str(job), f"trained on release #{job.release_id}")
        )
    adapters = list(Adapter.objects.filter(release_id__in=release_pks).order_by("pk"))
    for adapter in adapters:
        tainted.append(
            Tainted(
                TaintKind.ADAPTER,
                adapter.pk,
                adapter.project_id,
                adapter.name,
                f"trained on release #{adapter.release_id}",
            )
        )
    adapter_pks = [a.pk for a in adapters]
    judged = set(EvaluationSystem.objects.filter(adapter_id__in=adapter_pks).values_list("evaluation_id", flat=True))
    generated = set(
        GenerationRun.objects.filter(pk__in=run_ids, evaluation__isnull=False).values_list("evaluation_id", flat=True)
    )
    on_release = set(Evaluation.objects.filter(release_id__in=release_pks).values_list("pk", flat=True))
    for evaluation in Evaluation.objects.filter(pk__in=judged | generated | on_release).order_by("pk"):
        why = (
            "judged a tainted adapter"
            if evaluation.pk in judged
            else (
                "its answers held erased text"
                if evaluation.pk in generated
                else "its prompts came from a tainted release"
            )
        )
        tainted.append(Tainted(TaintKind.EVALUATION, evaluation.pk, evaluation.project_id, evaluation.name, why))
    for target in DeploymentTarget.objects.filter(current_adapter_id__in=adapter_pks).order_by("pk"):
        tainted.append(
            Tainted(TaintKind.DEPLOYMENT_TARGET, target.pk, target.project_id, target.name,
                    f"serves tainted adapter #{target.current_adapter_id}")
        )  # fmt: skip
    return tainted


def run_ids_of(found: Found) -> set[int]:
    """The generation runs whose answers (candidates) held a match."""
    pks = [hit.pk for hit in found.hits if hit.source.model is Candidate]
    return set(Candidate.objects.filter(pk__in=pks).values_list("run_id", flat=True))


def report_of(tainted: Sequence[Tainted]) -> dict[str, list[dict[str, Any]]]:
    """The taint report: per kind, what must be rebuilt, retrained, evaluated again or redeployed."""
    report: dict[str, list[dict[str, Any]]] = {kind: [] for kind in TaintKind.values}
    for t in tainted:
        report[t.kind].append({"id": t.pk, "project": t.project_id, "label": t.label, "why": t.why})
    return report


def project_names(project_ids: Iterable[int]) -> dict[int, str]:
    return dict(Project.objects.filter(pk__in=list(project_ids)).values_list("pk", "name"))
