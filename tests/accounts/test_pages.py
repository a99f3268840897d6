import pytest
from pytest_django import DjangoAssertNumQueries

from accounts.models import AuditEvent, Role
from tests.conftest import ClientFor, Personas
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def test_it_lists_only_my_projects_with_my_role_on_the_dashboard(personas: Personas, client_for: ClientFor) -> None:
    body = client_for(personas.reviewer).get("/").content.decode()
    assert "Project A" in body
    assert "Reviewer" in body
    assert "Project B" not in body
    outsider = client_for(personas.outsider).get("/").content.decode()
    assert "Project B" in outsider
    assert "Project A" not in outsider
    staff = client_for(personas.staff).get("/").content.decode()
    assert "Project A" in staff
    assert "Project B" in staff
    assert "New project" in staff


def test_it_keeps_the_dashboard_query_count_from_growing_with_projects(
    personas: Personas, client_for: ClientFor, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    client = client_for(personas.annotator)
    client.get("/")
    for _ in range(15):
        MembershipFactory.create(project=ProjectFactory.create(), user=personas.annotator, role=Role.ANNOTATOR)
    with django_assert_max_num_queries(8):
        body = client.get("/").content.decode()
    assert body.count('href="/projects/') == 16


def test_it_changes_a_role_in_place_on_the_members_page(personas: Personas, client_for: ClientFor) -> None:
    client = client_for(personas.project_admin)
    membership = personas.membership(personas.annotator)
    url = f"/projects/{personas.project.pk}/members/{membership.pk}/role/"
    row = client.post(url, {"role": "reviewer"}, HTTP_HX_REQUEST="true")
    html = row.content.decode()
    assert row.status_code == 200
    assert html.startswith(f'<tr id="member-{membership.pk}">')
    assert "Saved" in html
    assert '<option value="reviewer" selected>' in html
    membership.refresh_from_db()
    assert membership.role == "reviewer"


def test_it_explains_why_the_last_admin_stays_on_the_members_page(personas: Personas, client_for: ClientFor) -> None:
    client = client_for(personas.project_admin)
    membership = personas.membership(personas.project_admin)
    row = client.post(
        f"/projects/{personas.project.pk}/members/{membership.pk}/role/", {"role": "annotator"}, HTTP_HX_REQUEST="true"
    )
    html = row.content.decode()
    assert "at least one active project admin" in html
    assert '<option value="project_admin" selected>' in html


def test_it_removes_a_row_with_htmx_on_the_members_page(personas: Personas, client_for: ClientFor) -> None:
    membership = personas.membership(personas.reviewer)
    response = client_for(personas.project_admin).post(
        f"/projects/{personas.project.pk}/members/{membership.pk}/remove/", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response.content == b""
    assert not personas.project.memberships.filter(user=personas.reviewer).exists()


def test_it_lists_members_in_constant_queries_on_the_members_page(
    personas: Personas, client_for: ClientFor, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    client = client_for(personas.project_admin)
    for _ in range(12):
        MembershipFactory.create(project=personas.project, role=Role.ANNOTATOR)
    with django_assert_max_num_queries(14):
        body = client.get(f"/projects/{personas.project.pk}/members/").content.decode()
    assert body.count('<tr id="member-') == 17


def test_it_filters_the_audit_page_and_answers_htmx_with_the_table(personas: Personas, client_for: ClientFor) -> None:
    client = client_for(personas.project_admin)
    url = f"/projects/{personas.project.pk}/audit/"
    full = client.get(url).content.decode()
    assert "<html" in full
    assert "membership.add" in full
    assert "Project B" not in full
    fragment = client.get(url, {"action": "project.create"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment
    assert fragment.count("<code>project.create</code>") == 1
    assert "<code>membership.add</code>" not in fragment
    by_actor = client.get(url, {"actor": "nobody"}, HTTP_HX_REQUEST="true").content.decode()
    assert "No events match these filters." in by_actor


def test_it_shows_only_this_projects_events_on_the_audit_page(personas: Personas, client_for: ClientFor) -> None:
    other_events = AuditEvent.objects.filter(project=personas.other_project).count()
    assert other_events > 0
    body = client_for(personas.project_admin).get(f"/projects/{personas.project.pk}/audit/").content.decode()
    assert "user=outsider" not in body.replace("<b>", "").replace("</b>", "")


def test_it_lists_projects_with_roles_in_constant_queries_through_the_api(
    personas: Personas, client_for: ClientFor, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    client = client_for(personas.data_lead)
    for _ in range(10):
        MembershipFactory.create(project=ProjectFactory.create(), user=personas.data_lead, role=Role.DATA_LEAD)
    with django_assert_max_num_queries(8):
        body = client.get("/api/v1/projects/").json()
    assert body["count"] == 11
    assert {p["role"] for p in body["results"]} == {"data_lead"}


def test_it_explains_refusals_through_the_api(personas: Personas, client_for: ClientFor) -> None:
    client = client_for(personas.project_admin)
    url = f"/api/v1/projects/{personas.project.pk}/members/"
    unknown = client.post(url, {"username": "ghost", "role": "annotator"}, content_type="application/json")
    assert unknown.status_code == 404, "the user it names does not exist"
    assert unknown.json() == {"detail": "No user with this username.", "field": "username"}
    twice = client.post(url, {"username": "annotator", "role": "reviewer"}, content_type="application/json")
    assert twice.status_code == 409, "a conflict with the membership on record"
    assert twice.json() == {"detail": "annotator is already a member of this project.", "field": "user"}
    bad_role = client.post(url, {"username": "newcomer", "role": "king"}, content_type="application/json")
    assert bad_role.status_code == 400
    assert "role" in bad_role.json()


def test_it_filters_audit_events_through_the_api(personas: Personas, client_for: ClientFor) -> None:
    client = client_for(personas.project_admin)
    body = client.get(f"/api/v1/projects/{personas.project.pk}/audit-events/", {"action": "membership."}).json()
    assert body["count"] == 5
    assert all(e["action"] == "membership.add" for e in body["results"])
    assert all(len(e["hash"]) == 64 for e in body["results"])
    bad = client.get(f"/api/v1/projects/{personas.project.pk}/audit-events/", {"since": "yesterday"})
    assert bad.status_code == 400
    assert "since" in bad.json()


def test_it_serves_a_valid_openapi_schema(client_for: ClientFor, personas: Personas) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    schema = client_for(personas.annotator).get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/projects/{id}/members/" in schema["paths"]
    assert "apiToken" in schema["components"]["securitySchemes"]
    submit = schema["paths"]["/api/v1/projects/{id}/comparisons/{item_pk}/judgements/"]["post"]["responses"]
    assert {"201", "400", "401", "404", "409"} <= set(submit), "the refusals are documented"
    error = {"$ref": "#/components/schemas/Error"}
    assert submit["409"]["content"]["application/json"]["schema"] == error
    assert error in submit["400"]["content"]["application/json"]["schema"]["oneOf"]
    listing = schema["paths"]["/api/v1/projects/{id}/judgements/"]["get"]["responses"]
    assert {"200", "400", "401", "404"} <= set(listing)
    for path, operations in schema["paths"].items():  # every operation needs a token or a session
        for method, operation in operations.items():  # … but the index, health and sign-in (open to all)
            open_to_all = {} in operation.get("security", [])
            assert ("401" in operation["responses"]) or open_to_all, (method, path)
            assert "404" in operation["responses"] or "{" not in path, (method, path)


def test_it_loads_nothing_from_outside_and_sends_the_security_headers_on_any_page(
    personas: Personas, client_for: ClientFor
) -> None:
    client = client_for(personas.staff)
    for url in ["/", f"/projects/{personas.project.pk}/members/", "/users/", "/audit/", "/api/docs/"]:
        response = client.get(url)
        body = response.content.decode()
        assert "http://" not in body.replace("http://testserver", "")
        assert "https://" not in body
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "http" not in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Frame-Options"] == "DENY"
