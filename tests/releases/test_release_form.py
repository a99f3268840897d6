"""The new-release form: the kinds and options of the project's work, defaults that say what they do, and a
server that reads only the chosen kind's options."""

import re

from releases.forms import ReleaseForm
from releases.models import Release
from releases.recipe import Recipe
from tests.annotation.helpers import chat_line, import_lines
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import make_comparisons

SFT_ONLY = ("exclude_flags", "mixin_batches", "mixin_percent")
PREFERENCE_ONLY = ("aggregation", "ties", "min_agreement_percent", "min_strength", "ranking_pairs", "per_criterion")


def _kind_options(page: str) -> list[str]:
    return re.findall(r'<input type="radio" name="kind" value="([^"]+)"', page)


def test_it_offers_only_preference_options_in_a_project_of_comparisons(
    personas: Personas, client_for: ClientFor
) -> None:
    make_comparisons(personas.project, personas.data_lead, 1)
    page = client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/releases/new/").content.decode()
    assert _kind_options(page) == ["preference"]
    for name in PREFERENCE_ONLY:
        assert f'id="field-{name}" data-when="preference">' in page, name
    for name in SFT_ONLY:
        assert f'id="field-{name}"' not in page, f"{name}: an SFT option in a project of comparisons"
    for legend in ("Selection", "Split", "Export"):
        assert f"<legend>{legend}</legend>" in page


def test_it_offers_only_sft_options_in_an_sft_project(personas: Personas, client_for: ClientFor) -> None:
    import_lines(personas.project, personas.data_lead, chat_line("What is an IBAN?"))
    page = client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/releases/new/").content.decode()
    assert _kind_options(page) == ["sft"]
    for name in SFT_ONLY:
        assert f'id="field-{name}" data-when="sft">' in page, name
    for name in PREFERENCE_ONLY:
        assert f'id="field-{name}"' not in page, f"{name}: a preference option in an SFT project"


def test_it_hides_the_other_kinds_options_until_chosen_where_the_project_may_hold_either(
    personas: Personas, client_for: ClientFor
) -> None:
    page = client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/releases/new/").content.decode()
    assert _kind_options(page) == ["preference", "sft"], "nothing imported: both, preference first"
    assert 'id="field-min_strength" data-when="preference">' in page
    assert 'id="field-mixin_percent" data-when="sft" hidden>' in page


def test_it_defaults_minimum_strength_to_the_recipes_none_and_says_so(personas: Personas) -> None:
    field = ReleaseForm(project=personas.project).fields["min_strength"]
    assert field.initial == Recipe.min_strength == 0.0
    assert str(field.help_text).startswith("0: no minimum (the recipe's default)")
    assert "1 slightly, 2 clearly, 3 much better" in str(field.help_text)


def test_it_reads_only_the_chosen_kinds_options_and_refuses_a_kind_the_project_does_not_hold(
    personas: Personas, client_for: ClientFor
) -> None:
    lead = client_for(personas.data_lead)
    url = f"/projects/{personas.project.pk}/releases/new/"
    form = {"name": "SFT v", "kind": "sft", "eval_percent": 10, "leakage": "fail", "near_duplicate_percent": 80,
            "mixin_percent": 0, "exclude_flags": ["pii_leak"],
            "min_strength": "much", "aggregation": "bogus", "per_criterion": "on"}  # fmt: skip
    response = lead.post(url, form)
    assert response.status_code == 302, response.content.decode()[-1500:]
    recipe = Release.objects.get(name="SFT v").recipe
    assert recipe["kind"] == "sft"
    assert (recipe["min_strength"], recipe["per_criterion"], recipe["exclude_flags"]) == (0.0, False, ["pii_leak"])

    import_lines(personas.project, personas.data_lead, chat_line("What is an IBAN?"))  # now an SFT project
    refused = lead.post(url, {**form, "name": "DPO v", "kind": "preference", "aggregation": "majority"})
    assert refused.status_code == 400
    assert "This project holds no work for a release of that kind." in refused.content.decode()
    assert not Release.objects.filter(name="DPO v").exists()


def test_it_asks_for_a_blank_option_of_the_chosen_kind(personas: Personas, client_for: ClientFor) -> None:
    make_comparisons(personas.project, personas.data_lead, 1)
    form = {"name": "P", "kind": "preference", "eval_percent": 10, "leakage": "fail", "near_duplicate_percent": 80,
            "aggregation": "majority", "ties": "drop", "ranking_pairs": "all", "min_agreement_percent": 0,
            "min_strength": ""}  # fmt: skip
    refused = client_for(personas.data_lead).post(f"/projects/{personas.project.pk}/releases/new/", form)
    assert refused.status_code == 400
    page = refused.content.decode()
    assert 'class="form-field has-error" id="field-min_strength"' in page
    assert "Give a value; the form opens with the default." in page
