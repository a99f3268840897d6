import pytest

from preferences import services
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import comparison_line, import_comparisons, letter_of, make_comparisons, set_mode

pytestmark = pytest.mark.django_db


def test_the_page_shows_candidates_shuffled_and_never_the_model_names(
    personas: Personas, client_for: ClientFor
) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    body = client_for(personas.annotator).get(f"/projects/{personas.project.pk}/compare/").content.decode()
    assert "Answer 0.0" in body
    assert "Answer 0.1" in body
    assert "m-alpha" not in body
    assert "m-beta" not in body
    assert "temperature" not in body
    first = letter_of(personas.annotator, item, 0)
    shown_first = "Answer 0.0" if first == "A" else "Answer 0.1"
    shown_second = "Answer 0.1" if first == "A" else "Answer 0.0"
    assert body.index(shown_first) < body.index(shown_second)


def test_candidates_render_markdown_and_never_run_script(personas: Personas, client_for: ClientFor) -> None:
    import_comparisons(
        personas.project,
        personas.data_lead,
        comparison_line(
            "Explain",
            "**Bold** and `code` <script>alert(1)</script>",
            '<img src=x onerror="alert(2)"> [link](javascript:alert(3)) <a href="javascript:alert(4)">x</a>',
        ),
    )
    body = client_for(personas.annotator).get(f"/projects/{personas.project.pk}/compare/").content.decode()
    assert "<strong>Bold</strong>" in body
    assert "<code>code</code>" in body
    assert "<script>alert" not in body
    assert "<img" not in body, "raw HTML in a candidate is shown as text"
    assert '<a href="javascript:' not in body


def test_submitting_from_the_page_maps_letters_and_loads_the_next(personas: Personas, client_for: ClientFor) -> None:
    first, _second = make_comparisons(personas.project, personas.data_lead, 2)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/compare/")
    winner_letter = letter_of(personas.annotator, first, 1)
    response = client.post(
        f"/projects/{personas.project.pk}/compare/{first.pk}/submit/",
        {"choice": winner_letter, "strength": "2", "idempotency_key": "page-1", "time_spent_ms": "3000"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "Saved. Here is the next comparison." in response.content.decode()
    assert response["HX-Push-Url"].endswith(f"/compare/{_second.pk}/")
    judgement = first.judgements.get()
    assert judgement.result == {"winner": 1, "strength": 2}


def test_a_ranking_posted_with_a_tie(personas: Personas, client_for: ClientFor) -> None:
    set_mode(personas.project, personas.data_lead, "ranking")
    (item,) = make_comparisons(personas.project, personas.data_lead, 1, candidates=3)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/compare/")
    ranks = {f"rank_{letter_of(personas.annotator, item, c)}": r for c, r in [(0, "2"), (1, "1"), (2, "2")]}
    client.post(
        f"/projects/{personas.project.pk}/compare/{item.pk}/submit/",
        {**ranks, "idempotency_key": "r1"},
        HTTP_HX_REQUEST="true",
    )
    assert item.judgements.get().result == {"ranking": [[1], [0, 2]]}


def test_the_quality_page_shows_bias_and_agreement(personas: Personas, client_for: ClientFor) -> None:
    items = make_comparisons(personas.project, personas.data_lead, 4)
    for n, item in enumerate(items):
        services.comparison_next(user=personas.annotator, project=personas.project)
        services.judgement_submit(
            user=personas.annotator, item=item, shown={"choice": "A"}, rationale="", time_spent_ms=1,
            idempotency_key=f"q{n}",
        )  # fmt: skip
    services.agreement_recompute(project=personas.project)
    body = client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/quality/").content.decode()
    assert "went to the candidate shown first" in body
    assert "m-alpha" in body, "data leads see per-model win rates"
    assert "Computed" in body
