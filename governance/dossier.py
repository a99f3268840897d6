"""An adapter's dossier (EU AI Act Art. 10(2)(a) to (h) and Art. 12), gathered from the floors below: the lineage
(training), its release's datasheet and files (releases), the rubric versions and guidelines in force and the
annotation procedure (annotation, preferences), pseudonymised annotator statistics and bias checks
(preferences), the job's per-step metrics and log (training), held-out and human evaluations, promotions and
deployments (evaluation), and the audit events of every object involved with the chain links from them to the
head (accounts).

``dossier_gather`` returns the ``Bundle``: ``dossier.json`` and every file it cites, as bytes by path; the
service (``governance.services.dossier_export``) adds the readable renderings, the standalone verifier and the
signed manifest. Annotators appear only as the HMAC pseudonyms releases use (``releases.selection.pseudonym``), never
by name; a project's own PII terms are counted, never copied."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db.models import Q
from django.utils import timezone

from accounts.models import AuditEvent, Project, User
from annotation.models import RubricVersion
from core.storage import artifact_storage
from core.version import code_version
from evaluation.models import Evaluation, PromotionRequest
from evaluation.selectors import adapter_deployments, adapter_evaluations, adapter_requests, systems_of
from governance.dossier_annotation import (
    annotation_procedure,
    annotator_statistics,
    bias_checks,
)
from releases.models import Release, ReleaseState
from releases.selection import pseudonym
from training.models import Adapter, JobLogLine, JobMetric, TrainingJob
from training.selectors import lineage

DOSSIER_FORMAT = "enclave-dossier/1"
RELEASE_FILES = ("manifest.json", "datasheet.json", "datasheet.md")

# Where each point of Art. 10(2) and Art. 12 is answered in dossier.json.
ARTICLE_INDEX = {
    "art_10_2_a_design_choices": ["lineage.config", "releases[].datasheet.a_design_choices"],
    "art_10_2_b_collection_and_origin": ["releases[].datasheet.b_collection_and_origin"],
    "art_10_2_c_preparation": ["releases[].datasheet.c_preparation", "rubrics", "annotation_procedure"],
    "art_10_2_d_assumptions": ["releases[].datasheet.d_assumptions"],
    "art_10_2_e_quantity_and_suitability": ["releases[].datasheet.e_quantity_and_suitability", "annotators"],
    "art_10_2_f_bias_examination": ["bias", "releases[].datasheet.f_bias_examination"],
    "art_10_2_g_mitigation": ["releases[].datasheet.g_mitigation", "annotation_procedure"],
    "art_10_2_h_gaps": ["known_gaps"],
    "art_12_record_keeping": ["audit", "training.files", "deployments"],
}


def canonical_json(value: Any) -> bytes:
    """Sorted keys, two-space indent, a final newline: the same content gives the same bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n" for row in rows)


@dataclass
class Bundle:
    """``dossier.json`` (``content``) and every file it cites, by path inside the bundle."""

    content: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return path


def dossier_gather(*, adapter: Adapter, exported_by: User, exported_at: datetime | None = None) -> Bundle:
    """Everything the dossier says about ``adapter``, read now. ``exported_at`` defaults to now."""
    exported_at = exported_at or timezone.now()
    job = adapter.job
    project = adapter.project
    bundle = Bundle(content={})
    record = lineage(adapter)
    releases = [_release(bundle, adapter.release)]
    rubrics = _rubrics(bundle, adapter.release)
    evaluations = [_evaluation(bundle, e) for e in adapter_evaluations(adapter).order_by("pk")]
    deployments = _deployments(adapter)
    annotators = annotator_statistics(project)
    bias = bias_checks(project, adapter.release)
    gaps = _gaps(adapter, releases, evaluations, annotators)
    bundle.content.update(
        {
            "format": DOSSIER_FORMAT,
            "exported_at": exported_at.isoformat(),
            "exported_by": exported_by.username,
            "code_version": code_version(),
            "article_index": ARTICLE_INDEX,
            "adapter": {"id": adapter.pk, "name": adapter.name, "sha256": adapter.sha256},
            "project": {"id": project.pk, "name": project.name},
            "lineage": record,
            "releases": releases,
            "rubrics": rubrics,
            "annotation_procedure": annotation_procedure(project, adapter.release),
            "annotators": annotators,
            "bias": bias,
            "known_gaps": gaps,
            "training": _training(bundle, job),
            "held_out_evaluation": adapter.metrics.get("evaluation", {}),
            "human_evaluations": evaluations,
            "deployments": deployments,
        }
    )
    bundle.content["audit"] = _audit(bundle, _involved(adapter, evaluations, deployments))
    return bundle


# --- Releases and rubrics -------------------------------------------------------------------------------------


def _release(bundle: Bundle, release: Release) -> dict[str, Any]:
    """The release's own manifest and datasheet files, byte for byte from the artifact store (the manifest's
    sha256 is the release hash); a deleted release's tombstone keeps its manifest and datasheet rows only."""
    storage = artifact_storage()
    cited: dict[str, str] = {}
    for name in RELEASE_FILES:
        stored = f"{release.storage_prefix}/{name}"
        if release.state == ReleaseState.BUILT and storage.exists(stored):
            with storage.open(stored, "rb") as stream:
                cited[name] = bundle.add(f"releases/{release.pk}/{name}", stream.read())
    if "datasheet.json" not in cited and release.datasheet is not None:
        cited["datasheet.json"] = bundle.add(f"releases/{release.pk}/datasheet.json", canonical_json(release.datasheet))
    return {
        "id": release.pk,
        "name": release.name,
        "version": release.version,
        "kind": release.kind,
        "state": release.state,
        "hash": release.hash,
        "built_at": release.built_at.isoformat() if release.built_at else None,
        "manifest_is_release_hash": "manifest.json" in cited,
        "datasheet": release.datasheet or {},
        "files": cited,
    }


def _rubrics(bundle: Bundle, release: Release) -> list[dict[str, Any]]:
    """The rubric versions the release names (those in force while its data was labelled), each with its
    guidelines as a file whose sha256 the release manifest records."""
    named = {v["version"]: v for v in (release.manifest or {}).get("rubric_versions", [])}
    rows = RubricVersion.objects.filter(project_id=release.project_id, version__in=list(named)).order_by("version")
    out = []
    for row in rows:
        text = row.guidelines.encode()
        path = bundle.add(f"rubrics/v{row.version}-guidelines.md", text)
        out.append(
            {
                "version": row.version,
                "created_at": row.created_at.isoformat(),
                "criteria": row.criteria,
                "guidelines_file": path,
                "guidelines_sha256": hashlib.sha256(text).hexdigest(),
                "matches_release_manifest": hashlib.sha256(text).hexdigest() == named[row.version]["guidelines_sha256"],
            }
        )
    return out


def _gaps(
    adapter: Adapter,
    releases: list[dict[str, Any]],
    evaluations: list[dict[str, Any]],
    annotators: list[dict[str, Any]],
) -> list[str]:
    gaps = [f"release {r['name']} v{r['version']}: {gap}" for r in releases for gap in r["datasheet"].get("h_gaps", [])]
    if adapter.release.state == ReleaseState.DELETED:
        gaps.append("the release was deleted: its tombstone keeps the manifest and datasheet, not the data files")
    if not adapter.metrics.get("evaluation", {}).get("after"):
        gaps.append("no held-out evaluation: the release has no evaluation rows")
    if not any(e["state"] == "finished" for e in evaluations):
        gaps.append("no finished human evaluation of this adapter")
    if adapter.job.environment.get("network", {}).get("refused"):
        gaps.append("the training process tried to open network connections (refused; see lineage.network)")
    flagged = [a["pseudonym"] for a in annotators if a.get("flagged") and not a.get("excluded")]
    if flagged:
        gaps.append(f"annotators flagged for gold accuracy or speed and not excluded: {', '.join(flagged)}")
    return gaps


# --- Training, evaluations, deployments ---------------------------------------------------------------------------


def _training(bundle: Bundle, job: TrainingJob) -> dict[str, Any]:
    metrics = [
        {"step": m.step, "phase": m.phase, "epoch": m.epoch, "values": m.values, "logged_at": m.logged_at.isoformat()}
        for m in JobMetric.objects.filter(job=job).order_by("id")
    ]
    lines = list(JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True))
    base = f"training/job-{job.pk}"
    return {
        "job": job.pk,
        "kind": job.kind,
        "state": job.state,
        "steps": job.step,
        "total_steps": job.total_steps,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "rerun_of": job.rerun_of_id,
        "environment": job.environment,
        "evaluation": job.evaluation,
        "logged_steps": len(metrics),
        "log_lines": len(lines),
        "files": {
            "metrics": bundle.add(f"{base}/metrics.jsonl", jsonl(metrics)),
            "log": bundle.add(f"{base}/log.txt", "".join(f"{line}\n" for line in lines).encode()),
        },
    }


def _evaluation(bundle: Bundle, evaluation: Evaluation) -> dict[str, Any]:
    results = pseudonymised_results(evaluation)
    entry = {
        "id": evaluation.pk,
        "name": evaluation.name,
        "state": evaluation.state,
        "source": evaluation.source,
        "prompt_count": evaluation.prompt_count,
        "decoding": evaluation.decoding,
        "judging_project": evaluation.judging_project_id,
        "finished_at": evaluation.finished_at.isoformat() if evaluation.finished_at else None,
        "systems": [
            {"position": s.position, "label": s.label, "adapter": s.adapter_id, "base_model": s.base_model_id}
            for s in systems_of(evaluation)
        ],
        "results": results,
    }
    entry["file"] = bundle.add(f"evaluations/{evaluation.pk}.json", canonical_json(entry))
    return entry


def pseudonymised_results(evaluation: Evaluation) -> dict[str, Any] | None:
    """The frozen results, their per-annotator rows naming judges by pseudonym in the judging project."""
    if not evaluation.results:
        return None
    results = dict(evaluation.results)
    rows = results.get("per_annotator") or []
    ids = dict(User.objects.filter(username__in={r.get("annotator") for r in rows}).values_list("username", "pk"))
    project_id = evaluation.judging_project_id or evaluation.project_id

    def alias(username: str | None) -> str:
        return pseudonym(project_id, ids[username]) if username in ids else "annotator-unknown"

    results["per_annotator"] = [{**r, "annotator": alias(r.get("annotator"))} for r in rows]
    return results


def _deployments(adapter: Adapter) -> dict[str, Any]:
    requests = []
    for request in adapter_requests(adapter).order_by("pk"):
        requests.append(
            {
                "id": request.pk,
                "target": request.target.name,
                "kind": request.kind,
                "state": request.state,
                "evaluation": request.evaluation_id,
                "replaces_adapter": request.replaces_adapter_id,
                "reason": request.reason,
                "gate": request.gate,
                "requested_by": request.requested_by.username,
                "requested_at": request.requested_at.isoformat(),
                "decided_at": request.decided_at.isoformat() if request.decided_at else None,
                "decision_note": request.decision_note,
                "approvals": [
                    {"approver": a.approver.username, "note": a.note, "at": a.created_at.isoformat()}
                    for a in request.approvals.select_related("approver").order_by("created_at", "pk")
                ],
            }
        )
    history = [
        {
            "target": d.target.name,
            "target_id": d.target_id,
            "kind": d.kind,
            "adapter": d.adapter_id,
            "previous_adapter": d.previous_adapter_id,
            "request": d.request_id,
            "at": d.created_at.isoformat(),
        }
        for d in adapter_deployments(adapter).order_by("created_at", "pk")
    ]
    return {"promotion_requests": requests, "history": history}


# --- Audit ------------------------------------------------------------------------------------------------------


def _involved(adapter: Adapter, evaluations: list[dict[str, Any]], deployments: dict[str, Any]) -> dict[str, set[str]]:
    """Every object the dossier speaks of, as the audit chain names them: (object type, ids)."""
    job = adapter.job
    release = adapter.release
    rubric_ids = RubricVersion.objects.filter(
        project_id=release.project_id,
        version__in=[v["version"] for v in (release.manifest or {}).get("rubric_versions", [])],
    ).values_list("pk", flat=True)
    evaluation_ids = [e["id"] for e in evaluations]
    runs = Evaluation.objects.filter(pk__in=evaluation_ids).values_list("systems__run_id", flat=True)
    target_ids = {d["target_id"] for d in deployments["history"]}
    target_ids |= set(PromotionRequest.objects.filter(adapter=adapter).values_list("target_id", flat=True))
    request_ids = {r["id"] for r in deployments["promotion_requests"]}
    request_ids |= {d["request"] for d in deployments["history"] if d["request"]}
    projects = {adapter.project_id} | {e["judging_project"] for e in evaluations if e["judging_project"]}
    involved = {
        Adapter._meta.label_lower: {adapter.pk},
        TrainingJob._meta.label_lower: {job.pk},
        Release._meta.label_lower: {release.pk},
        "training.basemodel": {adapter.base_model_id},
        RubricVersion._meta.label_lower: set(rubric_ids),
        Project._meta.label_lower: projects,
        Evaluation._meta.label_lower: set(evaluation_ids),
        "evaluation.generationrun": {r for r in runs if r is not None},
        "evaluation.deploymenttarget": target_ids,
        PromotionRequest._meta.label_lower: request_ids,
    }
    return {kind: {str(pk) for pk in ids} for kind, ids in involved.items() if ids}


def _audit(bundle: Bundle, involved: dict[str, set[str]]) -> dict[str, Any]:
    """The events of the objects involved, each in full as the chain hashes it, and the links (seq, prev_hash,
    hash) from the first of them to the head, so an auditor recomputes each event's hash and sees it in the
    chain that ends at the head (which ``manage.py audit_verify`` on the site reports)."""
    query = Q()
    for kind, ids in involved.items():
        query |= Q(object_type=kind, object_id__in=ids)
    events = list(AuditEvent.objects.filter(query).order_by("seq"))
    head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first() or {"seq": 0, "hash": ""}
    links: list[dict[str, Any]] = []
    if events:
        rows = AuditEvent.objects.filter(seq__gte=events[0].seq, seq__lte=head["seq"]).order_by("seq")
        links = [
            {"seq": seq, "prev_hash": prev, "hash": digest}
            for seq, prev, digest in rows.values_list("seq", "prev_hash", "hash").iterator(chunk_size=5000)
        ]
    rows_out = [{"event": e.canonical(), "prev_hash": e.prev_hash, "hash": e.hash} for e in events]
    return {
        "head": {"seq": head["seq"], "hash": head["hash"]},
        "hash_rule": 'sha256(prev_hash + "\\n" + JSON of the event, keys sorted, separators (",", ":"), UTF-8)',
        "objects": {kind: sorted(ids, key=lambda v: (len(v), v)) for kind, ids in sorted(involved.items())},
        "events": len(rows_out),
        "links": len(links),
        "actions": dict(sorted(_count(e.action for e in events).items())),
        "files": {
            "events": bundle.add("audit/events.jsonl", jsonl(rows_out)),
            "chain": bundle.add("audit/chain.jsonl", jsonl(links)),
        },
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out
