"""The new-job form: the job's kind is the chosen release's, and only that kind's options are shown and read."""

from pathlib import Path

from tests.access_matrix import matrix_job_form
from tests.conftest import ClientFor, Personas
from tests.training.helpers import ready_model, sft_release
from training.models import TrainingJob


def test_it_shows_and_reads_only_the_options_of_the_kind_the_chosen_release_trains(
    personas: Personas, client_for: ClientFor, tiny_model_dir: Path
) -> None:
    release = sft_release(personas.project, personas.data_lead, personas.annotator, personas.reviewer, count=4)
    model = ready_model(personas.staff, tiny_model_dir)
    page = client_for(personas.project_admin).get(f"/projects/{personas.project.pk}/training/new/").content.decode()
    assert f'<option value="{release.pk}" selected data-switch="sft">' in page, "the option says what it trains"
    assert '<input type="hidden" name="kind" value="sft"' in page
    assert 'id="field-packing" data-when="sft">' in page
    assert 'id="field-beta" data-when="dpo kto" hidden>' in page
    assert 'id="field-loss_type" data-when="dpo" hidden>' in page
    assert '<strong data-when="sft">SFT (supervised fine-tuning)</strong>' in page
    for legend in ("Training", "LoRA", "Schedule"):
        assert f"<legend>{legend}</legend>" in page

    # Sent anyway, the other kind's options and a kind of its own are not read: the release decides.
    form = {**matrix_job_form(personas), "release": release.pk, "base_model": model.pk}
    form |= {"kind": "dpo", "beta": "steep", "loss_type": "nonsense", "packing": "on"}
    response = client_for(personas.project_admin).post(f"/projects/{personas.project.pk}/training/new/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = TrainingJob.objects.get(project=personas.project)
    assert job.kind == "sft", "the release decides, not the kind sent"
    assert job.config["packing"] is True
    assert not {"beta", "loss_type"} & set(job.config)
