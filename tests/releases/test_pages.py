"""The release pages and API: define, watch, download with ETag, datasheet, diff, refusals."""

import hashlib
from typing import Any

from accounts.models import Role
from accounts.services import membership_add
from releases import services
from releases.models import Release
from tests.conftest import ClientFor, Personas
from tests.factories import UserFactory
from tests.releases.helpers import build, comparisons, judge
from tests.releases.test_build import PROMPTS, judged


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_it_lets_a_data_lead_define_a_release_and_read_its_datasheet(personas: Personas, client_for: ClientFor) -> None:
    judged(personas, PROMPTS[:10])
    client = client_for(personas.data_lead)
    form = {"name": "Retail DPO", "kind": "preference", "eval_percent": 20, "aggregation": "majority", "ties": "drop",
            "min_agreement_percent": 0, "min_strength": 0, "ranking_pairs": "all", "leakage": "fail",
            "near_duplicate_percent": 80, "mixin_percent": 0, "exclude_flagged_annotators": "on",
            "assumptions": "Customers write in English; answers follow the 2026 fee schedule."}  # fmt: skip
    response = client.post(f"/projects/{personas.project.pk}/releases/new/", form)
    release = Release.objects.get(name="Retail DPO")
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{personas.project.pk}/releases/{release.pk}/"
    assert (release.state, release.version, release.recipe["eval_fraction"]) == ("queued", 1, 0.2)
    page = client.get(response["Location"]).content.decode()
    assert 'id="release-progress"' in page
    services.release_build(release_id=release.pk)
    fragment = client.get(response["Location"] + "?fragment=progress", headers={"HX-Request": "true"})
    assert (fragment.status_code, fragment["HX-Refresh"]) == (204, "true")
    release.refresh_from_db()
    page = client.get(response["Location"]).content.decode()
    assert release.hash in page
    for heading in ("(a) Design choices", "(b) Data collection", "(c) Preparation", "(d) Assumptions",
                    "(e) Quantity", "(f) Examination", "(g) Mitigation", "(h) Gaps"):  # fmt: skip
        assert heading in page
    assert "2026 fee schedule" in page
    assert "trl_preference/train.jsonl" in page
    sheet = client.get(f"/api/v1/projects/{personas.project.pk}/releases/{release.pk}/datasheet/").json()
    assert sheet["d_assumptions"].startswith("Customers write in English")
    agreement = sheet["f_bias_examination"]["agreement_per_criterion"]["overall"]
    assert agreement == {"pairs": 10, "mean_majority_share": 1.0, "unanimous_share": 1.0, "krippendorff_alpha": 1.0}
    assert sheet["e_quantity_and_suitability"]["rows"] == release.manifest["counts"]["rows"]  # type: ignore[index]
    markdown = client.get(f"/api/v1/projects/{personas.project.pk}/releases/{release.pk}/datasheet/?as=md")
    text = body(markdown).decode()
    assert text.startswith("# Datasheet")
    held = sheet["e_quantity_and_suitability"]["requested_and_built"]["eval"]
    built = f"{held['built_share_of_items'] * 100:.1f} %".replace(".0 %", " %")
    assert held["items"] == release.manifest["counts"]["items"]["eval"]  # type: ignore[index]
    # Design choices in words, with the field; what was built beside the request (10 prompts do not split 80/20).
    assert f"| Held-out evaluation | 20 % requested; built: {built} (see (e)) | eval_fraction |" in text
    assert sheet["a_design_choices"]["recipe"]["eval_fraction"] == 0.2, "the JSON keeps the values"


def test_it_streams_downloads_with_the_file_hash_as_etag(personas: Personas, client_for: ClientFor) -> None:
    judged(personas, PROMPTS[:6])
    release = build(personas.project, personas.data_lead)
    found = release.files.get(path="trl_preference/train.jsonl")
    client = client_for(personas.project_admin)  # admins train on releases: they may download
    url = f"/projects/{personas.project.pk}/releases/{release.pk}/files/{found.pk}/"
    response = client.get(url)
    assert response.status_code == 200
    assert response["ETag"] == f'"{found.sha256}"'
    assert hashlib.sha256(body(response)).hexdigest() == found.sha256
    assert "attachment" in response["Content-Disposition"]
    assert client.get(url, headers={"If-None-Match": f'"{found.sha256}"'}).status_code == 304
    api = client.get(f"/api/v1/projects/{personas.project.pk}/releases/{release.pk}/files/{found.pk}/")
    assert hashlib.sha256(body(api)).hexdigest() == found.sha256


def test_it_lists_added_items_and_preference_flips_in_the_diff(personas: Personas, client_for: ClientFor) -> None:
    p = personas
    items = judged(p, PROMPTS[:8])
    v1 = build(p.project, p.data_lead, eval_fraction=0.0)
    flipped = items[0]  # annotator and reviewer chose candidate 0; three more people now choose 1
    for n in range(3):
        person = UserFactory.create(username=f"expert{n}")
        membership_add(actor=None, project=p.project, user=person, role=Role.ANNOTATOR)
        judge(flipped, person, {"winner": 1, "strength": 2})
    [added] = comparisons(p.project, p.data_lead, [PROMPTS[9]])
    judge(added, p.annotator, {"winner": 0, "strength": 1})
    v2 = build(p.project, p.data_lead, eval_fraction=0.0)
    client = client_for(p.data_lead)
    diff = client.get(f"/api/v1/projects/{p.project.pk}/releases/diff/", {"a": v1.pk, "b": v2.pk}).json()
    assert diff["counts"]["added"] == 1
    assert diff["examples"]["added"] == [{"item": added.pk, "split": "train"}]
    assert diff["counts"]["flips"] == 1
    assert diff["examples"]["flips"][0]["item"] == flipped.pk
    assert diff["counts"]["eval_to_train"] == 0
    assert diff["counts"]["removed"] == 0
    page = client.get(f"/projects/{p.project.pk}/releases/diff/", {"a": v1.pk, "b": v2.pk}).content.decode()
    assert "Preference flips" in page
    assert f"item #{flipped.pk}" in page
    v3 = build(p.project, p.data_lead, eval_fraction=0.0)  # the same recipe on the same data
    same = client.get(f"/projects/{p.project.pk}/releases/diff/?a={v2.pk}&b={v3.pk}&format=json").json()
    assert same["same_hash"] is True
    itself = client.get(f"/projects/{p.project.pk}/releases/diff/?a={v2.pk}&b={v2.pk}&format=json")
    assert (itself.status_code, itself.json()["detail"]) == (400, "Choose two different releases.")
    page = client.get(f"/projects/{p.project.pk}/releases/diff/").content.decode()
    assert f'<option value="{v3.pk}" selected>' in page.split('name="b"')[1].split("</select>")[0], "newest as To"
    assert f'<option value="{v2.pk}" selected>' in page.split('name="a"')[1].split("</select>")[0]
    unknown = "is not a built release of this project."
    queries: tuple[tuple[dict[str, str | int], str], ...] = (
        ({"a": "x", "b": v2.pk}, f"From: “x” {unknown}"),
        ({"a": v1.pk, "b": 999_999}, f"To: “999999” {unknown}"),
    )
    for query, message in queries:
        refused = client.get(f"/projects/{p.project.pk}/releases/diff/", query)
        assert refused.status_code == 400
        assert message in refused.content.decode()


def test_it_refuses_bad_recipes_and_changes_to_a_release_through_the_api(
    personas: Personas, client_for: ClientFor
) -> None:
    judged(personas, PROMPTS[:4])
    release = build(personas.project, personas.data_lead)
    client = client_for(personas.data_lead)
    url = f"/api/v1/projects/{personas.project.pk}/releases/"
    bad = client.post(url, {"name": "x", "recipe": {"kind": "preference", "ties": "sometimes"}},
                      content_type="application/json")  # fmt: skip
    assert bad.status_code == 400
    assert "ties" in bad.content.decode()
    unknown = client.post(url, {"name": "x", "recipe": {"kind": "preference", "rubric_versions": [7]}},
                          content_type="application/json")  # fmt: skip
    assert unknown.status_code == 400
    assert "rubric version 7" in unknown.content.decode()
    typed = client.post(url, {"name": "typed", "recipe": {"kind": "preference", "exclude_flagged_annotators": "false",
                        "per_criterion": "false"}}, content_type="application/json")  # fmt: skip
    assert typed.status_code == 202
    stored = personas.project.releases.get(name="typed").recipe
    assert stored["exclude_flagged_annotators"] is False, "the checked value is stored: the string 'false' is False"
    assert stored["per_criterion"] is False
    form = client.post(url, {"name": "form", "recipe.kind": "preference"})
    assert form.status_code == 415, "a recipe is a nested object: JSON only"
    for method in ("patch", "put"):
        refused = getattr(client, method)(f"{url}{release.pk}/", {"name": "renamed"}, content_type="application/json")
        assert refused.status_code == 405
    release.refresh_from_db()
    assert release.name == "rel"
    staff = client_for(personas.staff)
    change = staff.post(f"/django-admin/releases/release/{release.pk}/change/", {"name": "renamed"})
    assert change.status_code == 403
    assert staff.post(f"/django-admin/releases/release/{release.pk}/delete/", {"post": "yes"}).status_code == 403
    release.refresh_from_db()
    assert (release.name, release.state) == ("rel", "built")


def test_it_needs_a_reason_to_delete_a_release_on_the_page_and_in_the_api(
    personas: Personas, client_for: ClientFor, django_capture_on_commit_callbacks: Any
) -> None:
    from accounts.models import AuditEvent

    judged(personas, PROMPTS[:6])
    first = build(personas.project, personas.data_lead, name="v-page")
    second = build(personas.project, personas.data_lead, name="v-api")
    admin = client_for(personas.project_admin)
    page_url = f"/projects/{personas.project.pk}/releases/{first.pk}/"
    page = admin.get(page_url).content.decode()
    assert "data-confirm=" in page, "the page asks before deleting"
    recipe = page[page.index('id="recipe"') :]
    for label, value in (("Held-out evaluation", "10 %"), ("Aggregation", "Majority (most judgements win"),
                         ("When a leak is found", "Fail the build with a report"), ("Item tags", "any")):  # fmt: skip
        assert f"{label}</th><td>{value}" in recipe
    assert "eval_fraction" not in recipe.split("</table>")[0].replace("field “eval_fraction”", "")
    assert 'placeholder="Reason (required, audited)" aria-label="Reason for deleting" required' in page

    refused = admin.post(page_url + "delete/", {"reason": " "}, follow=True).content.decode()
    assert "Say why the release is deleted" in refused
    first.refresh_from_db()
    assert first.state == "built"
    with django_capture_on_commit_callbacks(execute=True):
        done = admin.post(page_url + "delete/", {"reason": "superseded by v2"}, follow=True).content.decode()
    assert "is deleted; its tombstone keeps the hash" in done
    first.refresh_from_db()
    assert first.state == "deleted"
    event = AuditEvent.objects.get(action="release.delete", object_id=str(first.pk))
    assert event.payload["reason"] == "superseded by v2"

    api_url = f"/api/v1/projects/{personas.project.pk}/releases/{second.pk}/"
    response = admin.delete(api_url)
    assert (response.status_code, list(response.json())) == (400, ["reason"]), "the missing parameter is named"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.delete(api_url + "?reason=withdrawn")
    assert (response.status_code, response.json()["state"]) == (200, "deleted")


def test_it_says_so_where_a_release_without_held_out_rows_is_trained(personas: Personas, client_for: ClientFor) -> None:
    judged(personas, PROMPTS[:4])
    none_held = build(personas.project, personas.data_lead, name="all-train", eval_fraction=0.0)
    some_held = build(personas.project, personas.data_lead, name="held", eval_fraction=0.5)
    assert (none_held.eval_rows, some_held.eval_rows > 0) == (0, True)
    lead = client_for(personas.data_lead)
    page = lead.get(f"/projects/{personas.project.pk}/releases/{none_held.pk}/").content.decode()
    assert 'id="no-eval"' in page
    assert "at 0 % held out, no group of this data landed in evaluation" in page
    assert 'id="no-eval"' not in lead.get(f"/projects/{personas.project.pk}/releases/{some_held.pk}/").content.decode()
    form = client_for(personas.project_admin).get(f"/projects/{personas.project.pk}/training/new/").content.decode()
    assert "all-train v1 (Preference pairs, " in form
    assert ", no held-out rows: no evaluation)" in form.split("all-train v1")[1].split("</option>")[0]
    assert "no held-out rows" not in form.split("held v1")[1].split("</option>")[0]
