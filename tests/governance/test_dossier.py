"""An adapter's signed dossier: built from a real chain (a release judged by people, a DPO job trained on a real gpu
worker, an evaluation, a promotion approved by two people), verified by ``dossier_verify`` and by the bundle's
standalone script run in an isolated Python, and failing with the file named when any byte of any file or of the
manifest changes. Export through the API and the page, who may export, and the signing key."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent, Role
from core.errors import DomainError
from evaluation.deployment import promotion_approve, promotion_request
from governance.services import dossier_export
from governance.signing import key_path
from preferences import services as preference_services
from preferences.models import AgreementSnapshot
from releases.selection import pseudonym
from tests.annotation.helpers import give_rubric
from tests.conftest import Personas, make_personas
from tests.evaluation import deploy_helpers as h
from tests.factories import MembershipFactory, UserFactory
from tests.releases.helpers import build, comparisons, judge
from tests.training.helpers import distinct_prompts, quick_config, ready_model, wait_for
from training import services as training_services
from training.models import Adapter, JobState

VERIFIER = Path(settings.BASE_DIR) / "governance" / "verify_dossier.py"
JUDGE_NAMES = ("zelda.quartermaine", "yorick.brandywell")  # names that appear nowhere else in a dossier

# One file of each kind the bundle holds, and the manifest and its signature.
TAMPERED = [
    "dossier.json", "dossier.html", "dossier.pdf", "README.txt", "public_key.pem", "verify_dossier.py",
    "audit/events.jsonl", "audit/chain.jsonl", "rubrics/v1-guidelines.md", "evaluations/{evaluation}.json",
    "releases/{release}/manifest.json", "releases/{release}/datasheet.json", "releases/{release}/datasheet.md",
    "training/job-{job}/metrics.jsonl", "training/job-{job}/log.txt", "manifest.json", "manifest.sig",
]  # fmt: skip


def standalone(directory: Path, *extra: str, script: Path = VERIFIER) -> subprocess.CompletedProcess[str]:
    """The verifier as an auditor runs it: isolated Python (no PYTHONPATH, no current directory on the path, so
    Enclave cannot be imported), from the dossier's directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "PYTHON"))}
    return subprocess.run(
        [sys.executable, "-I", str(script), str(directory), *extra],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def flipped(source: Path, target: Path, name: str) -> Path:
    shutil.copytree(source, target)
    path = target / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return target


# --- The whole chain, trained for real (one training job for the module) ---------------------------------------


def _judged_release(p: Personas) -> Any:
    """A preference release two named judges judged (they disagree on one), agreement computed."""
    judges = [UserFactory.create(username=name) for name in JUDGE_NAMES]
    for user in judges:
        MembershipFactory.create(project=p.project, user=user, role=Role.ANNOTATOR)
    from annotation.models import AnnotationSettings

    AnnotationSettings.objects.update_or_create(project=p.project, defaults={"annotators_per_item": 2})
    give_rubric(p.project, p.data_lead)
    for n, item in enumerate(comparisons(p.project, p.data_lead, distinct_prompts(10, seed=5))):
        judge(item, judges[0], {"winner": 0, "strength": 2})
        judge(item, judges[1], {"winner": 0 if n else 1, "strength": 1})
    preference_services.agreement_recompute(project=p.project)
    return build(p.project, p.data_lead, name="prefs", eval_fraction=0.3), judges


def _promoted(p: Personas, adapter: Adapter) -> None:
    """An evaluation of the adapter against the base model (frozen figures) and a promotion two approvers carry."""
    p.made["base_model"] = adapter.base_model
    cast = h.cast(p)
    target = h.target(p, None, max_metric_regression=1.0)
    evaluation = h.evaluation(p, adapter, None)
    request = promotion_request(actor=cast.requester, target=target, adapter=adapter, evaluation=evaluation)
    promotion_approve(actor=cast.approver, request=request, note="Checked the gate.")
    promotion_approve(actor=cast.second_approver, request=request)


def test_it_exports_a_dossier_of_a_trained_adapter_that_verifies_and_names_any_changed_file(
    gpu_worker: subprocess.Popen[str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    p = make_personas()
    release, judges = _judged_release(p)
    model = ready_model(p.staff, tiny_model_dir)
    job = training_services.training_job_start(
        actor=p.project_admin, project=p.project, kind="dpo", release=release, base_model=model,
        config=quick_config("dpo"), preset="cpu_check",
    )  # fmt: skip
    job = wait_for(job, {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
    assert job.state == JobState.SUCCEEDED, job.failure_reason
    adapter = Adapter.objects.get(job=job)
    _promoted(p, adapter)

    bundle = tmp_path / "dossier"
    exported = dossier_export(actor=p.staff, adapter=adapter, directory=bundle)

    # Signed, audited, and verified by the command and by the bundle's own script in an isolated Python.
    manifest = (bundle / "manifest.json").read_bytes()
    assert exported.manifest_sha256 == hashlib.sha256(manifest).hexdigest()
    event = AuditEvent.objects.get(action="dossier.export")
    assert (event.actor, event.object_type, event.object_id) == (p.staff, "training.adapter", str(adapter.pk))
    assert event.payload["manifest_sha256"] == exported.manifest_sha256
    out = io.StringIO()
    call_command("dossier_verify", str(bundle), stdout=out)
    assert "Dossier verified" in out.getvalue()
    own = standalone(bundle, script=bundle / "verify_dossier.py")
    assert own.returncode == 0, own.stdout + own.stderr
    assert "OK      manifest.json signed by manifest.sig" in own.stdout
    assert f"key fingerprint {exported.fingerprint}" in own.stdout
    assert "OK      audit chain" in own.stdout
    assert own.stdout.rstrip().endswith("Dossier verified: every file is as signed.")

    # What it says: the chain from judgements to deployment, annotators by pseudonym only.
    content = json.loads((bundle / "dossier.json").read_text())
    assert content["lineage"]["release"]["hash"] == release.hash == adapter.release_hash
    assert hashlib.sha256((bundle / f"releases/{release.pk}/manifest.json").read_bytes()).hexdigest() == release.hash
    assert content["releases"][0]["datasheet"]["h_gaps"] == release.datasheet["h_gaps"]
    assert content["lineage"]["seed"] == adapter.seed
    assert content["lineage"]["hardware"]["device"] == "cpu"
    assert content["lineage"]["network"] == job.environment["network"]
    assert content["annotation_procedure"]["annotators_per_item"] == 2
    assert [r["version"] for r in content["rubrics"]] == [1]
    assert content["rubrics"][0]["matches_release_manifest"] is True
    stats = {row["pseudonym"]: row for row in content["annotators"]}
    snapshot = AgreementSnapshot.objects.get(project=p.project)
    for user in judges:
        row = stats[pseudonym(p.project.pk, user.pk)]
        assert row["judgements"] == 10
        assert row["agreement_with_consensus"] == snapshot.figures["consensus"][user.username]
    assert content["bias"]["position_bias_in_project_now"][0]["decisive"] == 20
    assert content["training"]["log_lines"] > 0
    metrics = (bundle / f"training/job-{job.pk}/metrics.jsonl").read_text().splitlines()
    assert content["training"]["logged_steps"] == len(metrics) > 0
    assert content["held_out_evaluation"]["after"]
    assert [e["state"] for e in content["human_evaluations"]] == ["finished"]
    [requested] = content["deployments"]["promotion_requests"]
    assert (requested["state"], [a["approver"] for a in requested["approvals"]]) == ("done", ["approver", "approver2"])
    assert [d["kind"] for d in content["deployments"]["history"]] == ["promotion"]
    actions = content["audit"]["actions"]
    expected = (
        "release.create", "release.build", "training.job_start", "training.adapter_register", "project.create",
        "training.base_model_validate", "rubric.create_version", "deployment.target_create",
        "deployment.promotion_request", "deployment.approve", "deployment.promote",
    )  # fmt: skip
    for action in expected:
        assert actions.get(action), f"{action} missing from {actions}"
    assert content["audit"]["head"]["seq"] == event.seq - 1  # the export's own event comes after
    for path in bundle.rglob("*"):
        if path.is_file():
            for name in JUDGE_NAMES:
                assert name.encode() not in path.read_bytes(), f"{name} in {path.name}"
    assert (bundle / "dossier.pdf").read_bytes().startswith(b"%PDF-")

    # One changed byte anywhere fails, naming the file; so does another key.
    names = {"evaluation": content["human_evaluations"][0]["id"], "release": release.pk, "job": job.pk}
    for n, template in enumerate(TAMPERED):
        name = template.format(**names)
        copy = flipped(bundle, tmp_path / f"tampered-{n}", name)
        result = standalone(copy)
        assert result.returncode == 1, f"{name}: {result.stdout}"
        assert name in result.stdout.splitlines()[-1], f"{name}: {result.stdout}"
        if name in ("dossier.pdf", "manifest.json"):
            with pytest.raises(CommandError, match=f"FAILED: .*{name}"):
                call_command("dossier_verify", str(copy), stdout=io.StringIO())
    extra = tmp_path / "extra"
    shutil.copytree(bundle, extra)
    (extra / "audit" / "note.txt").write_text("added later")
    assert "FAILED  audit/note.txt: not listed in the manifest" in standalone(extra).stdout
    other_key = tmp_path / "other.pem"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from governance.signing import public_pem

    other_key.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    wrong = standalone(bundle, "--public-key", str(other_key))
    assert wrong.returncode == 1
    assert "FAILED  manifest.json: its signature in manifest.sig does not match" in wrong.stdout
    right = standalone(bundle, "--public-key", str(bundle / "public_key.pem"))
    assert right.returncode == 0, right.stdout


# --- Export through the API and the page, access, the key (no training) ----------------------------------------


def _adapter(p: Personas) -> Adapter:
    return h.adapter(p, before={"preference_accuracy": 0.5}, after={"preference_accuracy": 0.6})


def test_it_answers_the_api_with_a_zip_that_verifies_and_audits_the_export(
    personas: Personas, client_for: Any, tmp_path: Path
) -> None:
    adapter = _adapter(personas)
    url = f"/api/v1/projects/{personas.project.pk}/adapters/{adapter.pk}/dossier/"
    response = client_for(personas.project_admin).post(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f'filename="dossier-adapter-{adapter.pk}.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as packed:
        names = packed.namelist()
        packed.extractall(tmp_path)
    folder = tmp_path / f"dossier-adapter-{adapter.pk}"
    assert {f"dossier-adapter-{adapter.pk}/{n}" for n in ("dossier.html", "dossier.pdf", "dossier.json",
            "manifest.json", "manifest.sig", "public_key.pem", "verify_dossier.py")} <= set(names)  # fmt: skip
    result = standalone(folder)
    assert result.returncode == 0, result.stdout
    event = AuditEvent.objects.get(action="dossier.export")
    assert (event.actor, event.project) == (personas.project_admin, personas.project)
    assert event.payload["manifest_sha256"] == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    assert not list(Path(tempfile.gettempdir()).glob(f"enclave-dossier-*/dossier-adapter-{adapter.pk}"))


def test_it_downloads_the_zip_from_the_adapter_page_for_those_who_read_the_audit_log(
    personas: Personas, client_for: Any
) -> None:
    adapter = _adapter(personas)
    page = f"/projects/{personas.project.pk}/adapters/{adapter.pk}/"
    assert 'id="export-dossier"' in client_for(personas.project_admin).get(page).content.decode()
    assert 'id="export-dossier"' not in client_for(personas.data_lead).get(page).content.decode()
    response = client_for(personas.staff).post(f"{page}dossier/")
    assert response.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).testzip() is None
    for user in (personas.data_lead, personas.approver, personas.annotator, personas.outsider):
        assert client_for(user).post(f"{page}dossier/").status_code == 404
    assert not AuditEvent.objects.filter(action="dossier.export", actor__in=[personas.data_lead]).exists()


def test_it_pseudonymises_the_judges_of_an_evaluation(personas: Personas, tmp_path: Path) -> None:
    adapter = _adapter(personas)
    evaluation = h.evaluation(personas, adapter, None)
    evaluation.results = {
        **(evaluation.results or {}),
        "per_annotator": [{"annotator": "reviewer", "system": 0, "wins": 3}],
    }
    evaluation.save(update_fields=["results"])
    dossier_export(actor=personas.staff, adapter=adapter, directory=tmp_path / "d")
    [found] = json.loads((tmp_path / "d" / "dossier.json").read_text())["human_evaluations"]
    alias = pseudonym(personas.project.pk, personas.reviewer.pk)
    assert found["results"]["per_annotator"] == [{"annotator": alias, "system": 0, "wins": 3}]


def test_it_refuses_a_directory_that_holds_files_and_writes_nothing(personas: Personas, tmp_path: Path) -> None:
    adapter = _adapter(personas)
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DomainError, match="is not empty"):
        dossier_export(actor=personas.staff, adapter=adapter, directory=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    assert not AuditEvent.objects.filter(action="dossier.export").exists()


def test_it_exports_and_verifies_with_the_commands(personas: Personas, tmp_path: Path) -> None:
    adapter = _adapter(personas)
    out = io.StringIO()
    call_command("dossier_export", str(adapter.pk), str(tmp_path / "d"), "--as", "staff", stdout=out)
    assert f"Dossier of adapter #{adapter.pk} written to {tmp_path / 'd'}" in out.getvalue()
    assert AuditEvent.objects.get(action="dossier.export").actor == personas.staff
    call_command("dossier_verify", str(tmp_path / "d"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="No active site staff user 'annotator'"):
        call_command("dossier_export", str(adapter.pk), str(tmp_path / "e"), "--as", "annotator")
    with pytest.raises(CommandError, match="There is no adapter #999999"):
        call_command("dossier_export", "999999", str(tmp_path / "e"))
    with pytest.raises(CommandError, match="is not a dossier"):
        call_command("dossier_verify", str(tmp_path))


def test_it_makes_the_key_once_readable_by_its_owner_and_shows_it_to_site_staff(
    personas: Personas, client_for: Any, tmp_path: Path, settings: Any
) -> None:
    settings.DOSSIER_SIGNING_KEY_FILE = tmp_path / "keys" / "signing.pem"
    page = client_for(personas.staff).get("/dossier-signing-key/")
    assert page.status_code == 200
    assert key_path().stat().st_mode & 0o777 == 0o600
    created = AuditEvent.objects.get(action="dossier.signing_key_create")
    html = page.content.decode()
    assert created.payload["fingerprint"] in html
    assert "BEGIN PUBLIC KEY" in html
    exported = dossier_export(actor=personas.staff, adapter=_adapter(personas), directory=tmp_path / "d")
    assert exported.fingerprint == created.payload["fingerprint"]
    assert AuditEvent.objects.filter(action="dossier.signing_key_create").count() == 1
    for user in (personas.project_admin, personas.outsider):
        assert client_for(user).get("/dossier-signing-key/").status_code == 404
    key_path().chmod(0o644)
    assert "may be read by other users" in client_for(personas.staff).get("/dossier-signing-key/").content.decode()
    with pytest.raises(DomainError, match="chmod 600"):
        dossier_export(actor=personas.staff, adapter=_adapter(personas), directory=tmp_path / "e")
