import pytest

from annotation.models import Draft, Item
from preferences import services
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import comparison_line, import_comparisons, letter_of, make_comparisons, set_mode

pytestmark = pytest.mark.django_db


def test_it_shows_candidates_shuffled_and_never_the_model_names_on_the_page(
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


def test_it_renders_candidates_markdown_and_never_runs_script(personas: Personas, client_for: ClientFor) -> None:
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


def test_it_maps_letters_and_loads_the_next_when_submitting_from_the_page(
    personas: Personas, client_for: ClientFor
) -> None:
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


def test_it_says_nothing_was_saved_for_a_changed_submit_after_back(personas: Personas, client_for: ClientFor) -> None:
    """Back brings the judged comparison's page again (htmx asks the server, which moves on); a form kept
    open from before and submitted again with another choice is refused, visibly, and changes nothing."""
    first, second = make_comparisons(personas.project, personas.data_lead, 2)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/compare/")
    url = f"/projects/{personas.project.pk}/compare/{first.pk}/"
    form = {"choice": letter_of(personas.annotator, first, 0), "strength": "2", "idempotency_key": "page-1"}
    assert client.post(url + "submit/", form, HTTP_HX_REQUEST="true").status_code == 200

    restored = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true", follow=True)
    body = restored.content.decode()
    assert "<html" in body, "a history restore gets the whole page, not a fragment"
    assert f"You judged comparison #{first.pk} already" in body
    assert f'data-item="{second.pk}"' in body

    changed = {**form, "choice": letter_of(personas.annotator, first, 1)}
    response = client.post(url + "submit/", changed, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "the changes made after submitting were not saved" in body
    assert 'class="notice warn" role="alert"' in body
    assert "Saved. Here is the next comparison." not in body
    assert first.judgements.get().result == {"winner": 0, "strength": 2}, "the first judgement stands"
    assert client.post(url + "submit/", form, HTTP_HX_REQUEST="true").status_code == 200, "a plain resend is fine"
    assert first.judgements.count() == 1


def test_it_takes_a_ranking_posted_with_a_tie(personas: Personas, client_for: ClientFor) -> None:
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


def test_it_shows_bias_and_agreement_on_the_quality_page(personas: Personas, client_for: ClientFor) -> None:
    items = make_comparisons(personas.project, personas.data_lead, 4)
    for n, item in enumerate(items):
        services.comparison_next(user=personas.annotator, project=personas.project)
        services.judgement_submit(
            user=personas.annotator, item=item, shown={"choice": "A"}, rationale="", time_spent_ms=1,
            idempotency_key=f"q{n}",
        )  # fmt: skip
    services.agreement_recompute(project=personas.project)
    body = client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/quality/").content.decode()
    assert "went to the one shown first" in body
    assert "m-alpha" in body, "data leads see per-model win rates"
    assert "Computed" in body
    assert '<td>annotator</td><td class="num">0</td>' in body, "one annotator alone has nobody to agree with"
    assert 'id="consensus-note"' in body, "and the page says why an annotator can show 0 items"


def test_it_adjudicates_a_ranking_on_the_page(personas: Personas, client_for: ClientFor) -> None:
    from annotation import services as annotation_services
    from preferences.models import Adjudication

    set_mode(personas.project, personas.data_lead, "ranking")
    annotation_services.annotation_settings_update(
        actor=personas.data_lead, project=personas.project, annotators_per_item=2, lease_minutes=30,
        pii_mode="replace", pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    (item,) = make_comparisons(personas.project, personas.data_lead, 1, candidates=3)
    judges = [(personas.annotator, [[0], [1, 2]]), (personas.project_admin, [[2], [0], [1]])]
    for n, (user, ranking) in enumerate(judges):
        services.comparison_next(user=user, project=personas.project)
        shown = [[letter_of(user, item, c) for c in tier] for tier in ranking]
        services.judgement_submit(
            user=user, item=item, shown={"ranking": shown}, rationale=f"r{n}", time_spent_ms=1, idempotency_key=f"a{n}"
        )
    adjudication = Adjudication.objects.get(item=item)
    path = f"/projects/{personas.project.pk}/adjudication/{adjudication.pk}/"
    party = client_for(personas.project_admin)
    assert "you judged it: another reviewer decides" in party.get(path[: path.rindex("/", 0, -1) + 1]).content.decode()
    page = party.get(path).content.decode()
    assert "You judged this comparison yourself" in page
    assert 'name="rank_1"' not in page, "no form for a party to the dispute"

    client = client_for(personas.reviewer)
    assert "another reviewer decides" not in client.get(path[: path.rindex("/", 0, -1) + 1]).content.decode()
    page = client.get(path).content.decode()
    assert "1 &gt; 2 = 3" in page, "judgements read as rankings with candidate numbers"
    assert '<select name="rank_3">' in page, "the form names candidates by the numbers the page shows"
    refused = client.post(path, {"rank_1": "1", "rank_2": "2", "note": "kept after a refusal"})
    assert refused.status_code == 400
    body = refused.content.decode()
    assert "Give every candidate a rank" in body
    assert '<option value="2" selected>2</option>' in body, "the ranks chosen so far stay"
    assert ">kept after a refusal</textarea>" in body
    done = client.post(path, {"rank_1": "1", "rank_2": "2", "rank_3": "1", "note": "1 and 3 equally good"})
    assert done.status_code == 302
    adjudication.refresh_from_db()
    assert adjudication.result == {"ranking": [[0, 2], [1]]}
    listing = client.get(f"/projects/{personas.project.pk}/adjudication/").content.decode()
    assert "1 = 3 &gt; 2" in listing
    assert "1 and 3 equally good" in listing


def test_it_saves_percentages_as_fractions_on_the_comparison_settings_page(
    personas: Personas, client_for: ClientFor
) -> None:
    from accounts.models import AuditEvent
    from preferences.selectors import preference_settings

    client = client_for(personas.data_lead)
    path = f"/projects/{personas.project.pk}/comparison-settings/"
    values = {
        "mode": "per_criterion", "rationale_required": "on", "gold_rate": "15", "gold_accuracy_threshold": "80",
        "gold_minimum": "4", "fast_fraction": "30", "adjudication_threshold": "75",
    }  # fmt: skip
    assert client.post(path, values).status_code == 302
    saved = preference_settings(personas.project)
    assert (saved.mode, saved.rationale_required, saved.gold_rate, saved.adjudication_threshold) == (
        "per_criterion", True, 0.15, 0.75,
    )  # fmt: skip
    assert AuditEvent.objects.filter(action="preferences.settings_update").exists()
    bad = client.post(path, {**values, "gold_rate": "80"})
    assert bad.status_code == 400
    assert preference_settings(personas.project).gold_rate == 0.15
    assert 'value="15"' in client.get(path).content.decode()


def test_it_lets_a_data_lead_exclude_and_reinclude_an_annotator(personas: Personas, client_for: ClientFor) -> None:
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    services.comparison_next(user=personas.annotator, project=personas.project)
    services.judgement_submit(
        user=personas.annotator, item=item, shown={"choice": "A"}, rationale="", time_spent_ms=1, idempotency_key="e"
    )
    client = client_for(personas.data_lead)
    path = f"/projects/{personas.project.pk}/quality/annotators/{personas.annotator.pk}/exclude/"
    client.post(path, {"excluded": "1"})
    page = client.get(f"/projects/{personas.project.pk}/quality/").content.decode()
    assert "excluded from releases" in page
    assert "Include again" in page
    client.post(path, {"excluded": "0"})
    from preferences.selectors import releasable_judgements

    assert releasable_judgements(personas.project).count() == 1
    reviewer_page = client_for(personas.reviewer).get(f"/projects/{personas.project.pk}/quality/").content.decode()
    assert "Exclude" not in reviewer_page, "reviewers watch quality; data leads decide exclusions"


def test_it_keeps_what_was_chosen_and_typed_after_a_refused_submit(personas: Personas, client_for: ClientFor) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", rationale_required=True)
    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/compare/")
    response = client.post(
        f"/projects/{personas.project.pk}/compare/{item.pk}/submit/",
        {"choice": "B", "strength": "3", "rationale": "  ", "idempotency_key": "k1"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert "this project asks for a rationale" in body
    assert 'data-draft="{&quot;choice&quot;: &quot;B&quot;, &quot;strength&quot;: &quot;3&quot;}"' in body, (
        "the page restores the choice from an attribute (htmx drops the scripts of what it swaps in)"
    )
    draft = Draft.objects.get(item=item, user=personas.annotator)
    assert draft.data["shown"] == {"choice": "B", "strength": "3"}, "and the draft holds it for a reload"
    assert not item.judgements.exists()


def test_it_moves_on_from_a_comparison_judged_in_another_tab(personas: Personas, client_for: ClientFor) -> None:
    first, second = make_comparisons(personas.project, personas.data_lead, 2)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/compare/")
    url = f"/projects/{personas.project.pk}/compare/{first.pk}/submit/"
    assert client.post(url, {"choice": "A", "idempotency_key": "tab-1"}, HTTP_HX_REQUEST="true").status_code == 200
    other_tab = client.post(url, {"choice": "B", "idempotency_key": "tab-2"}, HTTP_HX_REQUEST="true")
    body = other_tab.content.decode()
    assert "You already judged this comparison (in another tab or window)." in body
    assert f'data-item="{second.pk}"' in body, "the page goes on to the next comparison instead of sticking"
    assert first.judgements.count() == 1


def test_it_makes_skipping_a_gold_comparison_look_like_skipping_any_other(
    personas: Personas, client_for: ClientFor
) -> None:
    set_mode(personas.project, personas.data_lead, "pairwise", gold_rate=0.5)
    import_comparisons(personas.project, personas.data_lead, comparison_line("Gold?", "Good", "Bad", gold=1))
    gold = Item.objects.get(project=personas.project, gold__isnull=False)
    make_comparisons(personas.project, personas.data_lead, 1)
    while services.comparison_next(user=personas.annotator, project=personas.project) != gold:
        pass  # handed out at the gold rate (50 %), as a page would be
    client = client_for(personas.annotator)
    response = client.post(f"/projects/{personas.project.pk}/compare/{gold.pk}/skip/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "Skipped. It comes back to you once nothing else is left." in body
    assert "not assigned to you" not in body


def test_it_says_so_when_an_autosave_comes_after_the_lease_went_to_someone_else(
    personas: Personas, client_for: ClientFor
) -> None:
    from annotation.models import Slot

    (item,) = make_comparisons(personas.project, personas.data_lead, 1)
    client = client_for(personas.annotator)
    client.get(f"/projects/{personas.project.pk}/compare/")
    url = f"/projects/{personas.project.pk}/compare/{item.pk}/draft/"
    assert "Draft saved" in client.post(url, {"choice": "A"}, HTTP_HX_REQUEST="true").content.decode()
    Slot.objects.filter(item=item, user=personas.annotator).update(user=personas.reviewer)  # expired, then taken
    body = client.post(url, {"choice": "B"}, HTTP_HX_REQUEST="true").content.decode()
    assert "went to someone else after your lease ran out" in body
    assert "Draft saved" not in body
