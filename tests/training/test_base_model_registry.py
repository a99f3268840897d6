"""Fixing and deleting base-model registry entries, on the pages and through the API, audited."""

from accounts.models import AuditEvent
from tests.conftest import ClientFor, Personas
from training import services
from training.models import BaseModel, BaseModelState, TrainingJob


def _failed(personas: Personas, name: str = "llama-typo") -> BaseModel:
    return BaseModel.objects.create(
        name=name, path="/models/lama", state=BaseModelState.INVALID, failure_reason="/models/lama is not a directory.",
        registered_by=personas.staff,
    )  # fmt: skip


def test_it_lets_staff_fix_a_failed_entry_on_its_page_and_checks_it_again(
    personas: Personas, client_for: ClientFor
) -> None:
    model = _failed(personas)
    _failed(personas, name="taken")
    staff = client_for(personas.staff)
    page = staff.get(f"/models/{model.pk}/").content.decode()
    assert 'id="base-model-edit-form"' in page
    assert 'value="/models/lama"' in page
    assert "Save and check again" in page

    taken = staff.post(f"/models/{model.pk}/edit/", {"name": "taken", "path": "/models/llama", "description": ""})
    assert taken.status_code == 400
    assert "A base model is already called “taken”." in taken.content.decode()

    fixed = staff.post(f"/models/{model.pk}/edit/", {"name": "llama", "path": "/models/llama", "description": "7B"})
    assert (fixed.status_code, fixed["Location"]) == (302, f"/models/{model.pk}/")
    model.refresh_from_db()
    assert (model.name, model.path, model.description) == ("llama", "/models/llama", "7B")
    assert (model.state, model.failure_reason) == (BaseModelState.VALIDATING, ""), "a gpu worker checks it again"
    event = AuditEvent.objects.get(action="training.base_model_update", object_id=str(model.pk))
    assert event.payload == {
        "changes": {
            "name": ["llama-typo", "llama"],
            "path": ["/models/lama", "/models/llama"],
            "description": ["", "7B"],
        },
        "check": True,
    }
    assert (
        client_for(personas.project_admin).post(f"/models/{model.pk}/edit/", {"name": "x", "path": "/x"}).status_code
        == 404
    )


def test_it_deletes_an_entry_no_job_used_and_refuses_one_a_job_used(personas: Personas, client_for: ClientFor) -> None:
    from tests.access_matrix import matrix_job

    unused = _failed(personas)
    staff = client_for(personas.staff)
    deleted = staff.post(f"/models/{unused.pk}/delete/")
    assert (deleted.status_code, deleted["Location"]) == (302, "/models/")
    assert not BaseModel.objects.filter(pk=unused.pk).exists()
    event = AuditEvent.objects.get(action="training.base_model_delete", object_id=str(unused.pk))
    assert event.payload["name"] == "llama-typo"
    assert services.base_model_validate(model_id=unused.pk) is None, "a check still queued finds it gone"

    used = TrainingJob.objects.get(pk=matrix_job(personas)).base_model
    page = staff.get(f"/models/{used.pk}/").content.decode()
    assert 'id="delete-refused"' in page
    assert 'id="delete-model-form"' not in page
    refused = staff.post(f"/models/{used.pk}/delete/", follow=True)
    assert "cannot be deleted: 1 training job used it" in refused.content.decode()
    api = staff.delete(f"/api/v1/base-models/{used.pk}/")
    assert api.status_code == 409
    assert "cannot be deleted: 1 training job used it" in api.json()["detail"]
    assert BaseModel.objects.filter(pk=used.pk).exists()
    assert not AuditEvent.objects.filter(action="training.base_model_delete", object_id=str(used.pk)).exists()


def test_it_fixes_an_entry_through_the_api_saying_whether_it_is_checked_again(
    personas: Personas, client_for: ClientFor
) -> None:
    model = BaseModel.objects.create(
        name="ready", path="/models/ready", state=BaseModelState.READY, content_hash="a" * 64,
        registered_by=personas.staff,
    )  # fmt: skip
    api = client_for(personas.staff)
    url = f"/api/v1/base-models/{model.pk}/"
    renamed = api.patch(url, {"name": "ready-7b"}, content_type="application/json")
    assert (renamed.status_code, renamed.json()["name"], renamed.json()["state"]) == (200, "ready-7b", "ready")
    moved = api.patch(url, {"path": "/models/ready-v2"}, content_type="application/json")
    assert (moved.status_code, moved.json()["path"], moved.json()["state"]) == (202, "/models/ready-v2", "validating")
    relative = api.patch(url, {"path": "models/x"}, content_type="application/json")
    assert relative.status_code == 400
    assert relative.json()["field"] == "path"
    assert AuditEvent.objects.filter(action="training.base_model_update", object_id=str(model.pk)).count() == 2
    gone = api.delete(f"/api/v1/base-models/{model.pk}/")
    assert gone.status_code == 204
    assert not BaseModel.objects.filter(pk=model.pk).exists()
