"""The API fuzzed against its own OpenAPI schema with Schemathesis, as a real client would meet it: a gunicorn
server and a Celery worker on the test database (PostgreSQL in CI), one world of data, and every persona with
a token (annotator, reviewer, data lead, project admin, site staff) and without one.

Each run goes through Schemathesis' phases (the schema's examples, coverage of its boundaries, fuzzing with
valid and invalid data, and stateful sequences that follow the schema's OpenAPI links from what one call made
or listed to the calls that use it) with these checks: no 5xx; every status code, content type and body is the
schema's; invalid data is refused and valid data accepted (a rule beyond what a schema can hold may refuse it
if its answer says which, ``beyond_the_schema``); a deleted resource is gone and a created one is there; a
token is needed where the schema says so; and nothing of project B reaches project A's personas. Generated
values are offered with the world's real ids in them too (project A's, and project B's in A's place), so that
the fuzzing gets past the 404 of a random id. Then every operation must have answered past 401/404 for at least
one persona.

``ENCLAVE_FUZZ_EXAMPLES`` sets the examples per operation and phase (CI: a few; ``make fuzz``: many),
``ENCLAVE_FUZZ_COVERAGE`` the personas that run the coverage phase, ``ENCLAVE_FUZZ_SEED`` the seed. The figures
(operations, cases per persona and phase, seconds, status codes seen) are printed and written to
``tests/artifacts/api_fuzz.json``.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.db import connection
from schemathesis.engine import events
from schemathesis.engine.statistic import Statistic
from schemathesis.generation.value import GeneratedValue

from accounts.identity import group_mapping_create
from accounts.models import Role, User
from accounts.services import api_token_create, membership_add
from annotation import services as annotation_services
from evaluation.services import evaluation_advance
from tests.access_matrix import (
    matrix_adapter,
    matrix_merged,
    matrix_pending_request,
    matrix_reward_model,
    matrix_round,
    matrix_scoring_run,
)
from tests.annotation.helpers import GOOD_SCORES, give_rubric, import_items
from tests.conftest import Personas, make_personas
from tests.evaluation.judging_helpers import answered_evaluation, run_with_an_answer
from tests.factories import UserFactory
from tests.preferences.helpers import comparison_line, import_comparisons, make_comparisons
from tests.releases.helpers import build
from tests.workers import ROOT, start_worker, stop_worker, worker_env

pytestmark = [pytest.mark.worker, pytest.mark.postgres]

EXAMPLES = int(os.environ.get("ENCLAVE_FUZZ_EXAMPLES", "3"))
SEED = int(os.environ.get("ENCLAVE_FUZZ_SEED", "22"))
# Site staff last: they may deactivate the others' accounts.
PERSONAS = tuple(
    os.environ.get("ENCLAVE_FUZZ_PERSONAS", "anonymous,annotator,reviewer,data_lead,project_admin,staff").split(",")
)
# The coverage phase (every boundary of every parameter, about four thousand cases a persona) for site staff, who
# reach every operation (``make fuzz``: for every persona with a token); the examples, fuzzing and stateful
# phases for everyone.
COVERAGE_PERSONAS = set(os.environ.get("ENCLAVE_FUZZ_COVERAGE", "staff").split(","))
STATEFUL_FACTOR = 5  # stateful sequences per run: this many times the examples per operation
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)
FOREIGN = "Foreign-7f3a"  # in project B's name and content: no persona of project A may ever read it
ARTIFACTS = ROOT / "tests" / "artifacts"


@dataclass
class Run:
    persona: str
    statistic: Statistic = field(default_factory=Statistic)
    statuses: dict[str, set[int]] = field(default_factory=dict)
    phases: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


# The persona whose run is under way, for the cross-project check (site staff may read project B).
_current: dict[str, str] = {"persona": ""}


@schemathesis.check
def no_other_projects_data(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Any) -> bool:
    """Nothing of project B in any answer to a persona of project A (a dossier's zip read member by member)."""
    if _current["persona"] != "staff" and FOREIGN in _readable(response):
        raise AssertionError(f"{case.method} {case.formatted_path} answered project B's data")
    return True


def _readable(response: schemathesis.Response) -> str:
    """The answer as text: a zip's members one after another, anything else decoded with � for what is not text."""
    content = response.content
    if content[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return "\n".join(archive.read(name).decode("utf-8", "replace") for name in archive.namelist())
    return response.text_lossy()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(world: Personas, tmp_path: Path) -> Iterator[str]:
    """gunicorn (two workers, as in production) and a Celery worker for the default queue, on the test database,
    started once the world is built (the worker would otherwise build its release a second time, at once).
    The server's log goes to a file (a pipe nobody reads would fill and stop it); a traceback in it fails the test."""
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "enclave.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--timeout", "60", "--log-level", "warning"],
        cwd=ROOT, env=worker_env(), stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    worker = start_worker("default", "fuzz", output=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/health/", timeout=5):  # noqa: S310 - our own server
                    break
            except OSError:
                if web.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        stop_worker(worker, timeout=20)
        web.terminate()
        web.wait(timeout=30)
    errors = log.read_text()
    assert "Traceback" not in errors, errors[-4000:]


@pytest.fixture
def world(transactional_db: None, on_postgres: None) -> Personas:
    """Project A with something behind every route: an import, items, an annotation waiting for review,
    comparisons to judge, a built release with files, a ready base model, a job and its adapter. Project B has
    its own, marked so that any answer showing it is caught."""
    p = make_personas()
    give_rubric(p.project, p.data_lead)
    import_items(p.project, p.data_lead, 3)
    author = UserFactory.create(username="author")
    membership_add(actor=None, project=p.project, user=author, role=Role.ANNOTATOR)
    for n in range(2):
        slot = annotation_services.item_next(user=author, project=p.project)
        assert slot is not None
        annotation_services.annotation_submit(
            user=author, item=slot.item, response="An answer.", scores=GOOD_SCORES, flags=[], note="",
            time_spent_ms=1_000, submit_key=f"fuzz-{n}",
        )  # fmt: skip
    matrix_adapter(p)  # a built release of two judged comparisons, a base model, a job and its adapter
    matrix_merged(p)  # the adapter merged into its base model, ready, its weights in the artifact store
    p.made["evaluation"] = answered_evaluation(p, prompts=["A held-out question?"])  # its answers, not yet judged
    evaluation_advance(evaluation_id=p.made["evaluation"].pk)
    # The diff's own release: the fuzzing deletes the first one early (its id is offered to the delete), after
    # which a diff naming it could only answer 404.
    p.made["diff_release"] = build(p.project, p.data_lead, eval_fraction=0.0, name="Compared by the diff")
    p.made["open_comparison"] = make_comparisons(p.project, p.data_lead, 6)[0]
    p.made["generation_run"] = run_with_an_answer(p)
    matrix_scoring_run(p)  # a reward model's queued run over the comparisons (no gpu worker takes it)
    matrix_round(p)  # round 1 of the project, judging
    matrix_pending_request(p)  # a deployment target ("matrix-pending") with a promotion waiting for approvals
    p.made["erasure"] = _an_erasure(p)
    p.made["group_mapping"] = group_mapping_create(
        actor=p.staff, group="retail-reviewers", project=p.project, role=Role.REVIEWER
    )
    other = p.other_project
    other.name = f"Project B {FOREIGN}"
    other.save(update_fields=["name"])
    give_rubric(other, p.outsider)
    batch = import_comparisons(
        other, p.outsider, comparison_line(f"{FOREIGN} question?", f"{FOREIGN} one", f"{FOREIGN} two")
    )
    p.made["foreign_batch"] = batch
    p.made["foreign_comparison"] = batch.items.get()
    return p


def _an_erasure(p: Personas) -> Any:
    """An erasure of text imported only for it (the release and adapter above stay untainted)."""
    from governance.services import erasure_erase

    import_comparisons(p.project, p.data_lead, comparison_line("Customer FZ-1029 asks about fees?", "One", "Two"))
    return erasure_erase(
        actor=p.data_lead, mode="exact", term="FZ-1029", reason="A subject request.", request_key="fuzz-world",
        project_ids=[p.project.pk],
    )  # fmt: skip


class PersonaToken:
    """The persona's token; a new one when the fuzzing revoked it (its owner may revoke their tokens)."""

    user: User

    def get(self, case: Any, ctx: Any) -> str:
        try:
            _, raw = api_token_create(user=self.user, name="fuzzing", days=1)
        finally:
            connection.close()  # this thread's connection: the engine's threads come and go
        return raw

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Token {data}"}


def known_ids(p: Personas) -> dict[str, Any]:
    """Project A's objects by the name of the parameter (path, query or top-level body field) that takes them."""
    from annotation.models import Annotation, ImportBatch
    from releases.models import Release, ReleaseFile
    from training.models import Adapter, BaseModel

    release = Release.objects.get(pk=p.made["release"].pk)
    return {
        "id": p.project.pk,
        "membership_pk": p.membership(p.annotator).pk,
        "annotation_pk": Annotation.objects.filter(item__project=p.project).first().pk,  # type: ignore[union-attr]
        "batch_pk": ImportBatch.objects.filter(project=p.project).first().pk,  # type: ignore[union-attr]
        "item_pk": p.made["open_comparison"].pk,
        "release_pk": release.pk,
        "file_pk": ReleaseFile.objects.filter(release=release).first().pk,  # type: ignore[union-attr]
        "job_pk": Adapter.objects.get(pk=matrix_adapter(p)).job_id,
        "adapter_pk": matrix_adapter(p),
        "adapter": matrix_adapter(p),
        "run_pk": p.made["generation_run"].pk,
        "scoring_pk": matrix_scoring_run(p),
        "reward_model": matrix_reward_model(p),
        "reward_model_pk": matrix_reward_model(p),
        "number": matrix_round(p),
        "evaluation_pk": p.made["evaluation"].pk,
        "erasure_pk": p.made["erasure"].pk,
        "mapping_pk": p.made["group_mapping"].pk,
        "name": "matrix-pending",
        "target": p.made["pending"].target_id,  # a round's deployment target, named in its body
        "request_pk": p.made["pending"].pk,
        "index": 0,
        "model_pk": BaseModel.objects.get().pk,
        "user_pk": p.newcomer.pk,
        "release": release.pk,
        "base_model": BaseModel.objects.get().pk,
        "a": p.made["diff_release"].pk,
        "b": p.made["diff_release"].pk,
        "username": p.newcomer.username,
    }


def foreign_ids(p: Personas) -> list[dict[str, Any]]:
    """Project B's objects: its own address, and its comparison and import inside project A's."""
    return [
        {"id": p.other_project.pk},
        {"item_pk": p.made["foreign_comparison"].pk, "batch_pk": p.made["foreign_batch"].pk},
    ]


def _offer(known: dict[str, Any], foreign: list[dict[str, Any]]) -> Any:
    """A hook that offers, beside each generated value, the same value with project A's real ids in it (random
    ids all answer 404, and what lies behind the 404 is what needs fuzzing), and with project B's in A's place
    or in A's address (which must answer 404 to A's personas and never show B's data)."""
    from hypothesis import strategies as st

    def fill(value: Any) -> Any:
        if isinstance(value, GeneratedValue):
            # A value wrapped with its provenance: a mutation (meta) is meant to break the schema and stays as it is
            # (real ids in it could mend it); one drawn from other answers or the schema's names is filled inside.
            if value.meta is not None:
                return st.just(value)
            return fill(value.value).map(lambda inner: value.map_value(lambda _: inner))
        if not isinstance(value, dict):
            return st.just(value)
        real = {**value, **{name: known[name] for name in value if name in known}}
        crossed = [{**real, **{name: ids[name] for name in value if name in ids}} for ids in foreign]
        others = [value, *[other for other in crossed if other != real]]
        # Two draws in three carry the real ids: with a few examples per operation an even choice among three or
        # four could leave an operation never asked with them in a run.
        return st.one_of(st.just(real), st.just(real), st.sampled_from(others))

    def hook(context: Any, strategy: Any) -> Any:
        return strategy.flatmap(fill)

    return hook


def beyond_the_schema(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False for a schema-valid request refused by a rule the schema cannot hold, that says which: a 400 with a
    domain error's body (`{"detail", "field"}`: send back without a comment, a ranking of unknown letters) or an
    import's documented 422 with its numbered bad lines. Every other failure stands, a 400 whose field errors
    refuse what the schema allows among them."""
    if failure.code != "ST202":
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    if not isinstance(body, dict):
        return True
    if response.status_code == 400 and isinstance(body.get("detail"), str):
        return False
    return not (response.status_code == 422 and body.get("status") == "refused")


def _run(url: str, persona: str, user: User | None, known: dict[str, Any], foreign: list[dict[str, Any]]) -> Run:
    run = Run(persona)
    _current["persona"] = persona
    checks: dict[str, Any] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    checks["no_other_projects_data"] = {"enabled": True}
    # A query over the web server's request line limit is refused by it with a 414, which the schema documents.
    rejected = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429", "5xx"]
    checks["negative_data_rejection"] = {"enabled": True, "expected-statuses": rejected}
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "base-url": url,
            "generation": {"max-examples": EXAMPLES, "no-shrink": True, "database": "none", "allow-x00": False},
            "phases": {
                "coverage": {"enabled": persona in COVERAGE_PERSONAS, "generate-duplicate-query-parameters": True},
                "stateful": {"generation": {"max-examples": EXAMPLES * STATEFUL_FACTOR}},
            },
            "checks": checks,
            "cache": {"enabled": False},  # every run starts from the schema alone, and writes nothing to the tree
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/api/schema/?format=json", config=config)
    if user is not None:
        token = type("Token", (PersonaToken,), {"user": user})
        schema.auth(refresh_interval=3600)(token)
    for part in ("path_parameters", "query", "body"):
        schema.hook(f"before_generate_{part}")(_offer(known, foreign))
    schema.hook("filter_failure")(beyond_the_schema)
    started = time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            run.statistic.on_scenario_finished(event.recorder)
            run.phases[event.phase.value] = run.phases.get(event.phase.value, 0) + len(event.recorder.cases)
            for case_id, interaction in event.recorder.interactions.items():
                if interaction.response is not None:
                    label = event.recorder.cases[case_id].value.operation.label
                    run.statuses.setdefault(label, set()).add(interaction.response.status_code)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
    run.seconds = time.monotonic() - started
    return run


def _failures(run: Run) -> list[str]:
    found = []
    for label, groups in run.statistic.failures.items():
        for group in groups.values():
            for failure in group.failures:
                answer = group.response
                status = answer.status_code if answer is not None else "-"
                body = _readable(answer)[:300] if answer is not None else ""
                found.append(f"[{run.persona}] {label}: {failure.title} ({status}): {failure.message[:300]} → {body}")
                if group.code_sample:
                    found.append(f"    {group.code_sample[:500]}")
    return found


def test_it_holds_the_schema_for_every_persona(world: Personas, server: str) -> None:
    operations = {
        f"{method.upper()} {path}"
        for path, methods in json.loads(urllib.request.urlopen(f"{server}/api/schema/?format=json").read())[  # noqa: S310
            "paths"
        ].items()
        for method in methods
    }
    known, foreign = known_ids(world), foreign_ids(world)
    runs = [
        _run(server, name, None if name == "anonymous" else world.by_name(name), known, foreign) for name in PERSONAS
    ]
    reached = {label for run in runs for label, codes in run.statuses.items() if codes - {401, 404}}
    figures = {
        "operations": len(operations),
        "examples_per_operation": EXAMPLES,
        "seed": SEED,
        "cases": {run.persona: run.statistic.total_cases for run in runs},
        "phases": {run.persona: run.phases for run in runs},
        "seconds": {run.persona: round(run.seconds, 1) for run in runs},
        "total_cases": sum(run.statistic.total_cases for run in runs),
        "server_errors": sum(1 for run in runs for codes in run.statuses.values() for code in codes if code >= 500),
        "failures": sum(
            len(group.failures)
            for run in runs
            for groups in run.statistic.failures.values()
            for group in groups.values()
        ),
        "reached_past_404": len(reached & operations),
        # schema-valid requests a domain rule refused, saying which (``beyond_the_schema``): not failures
        "refused_by_a_rule": sum(run.statistic.filtered_failures for run in runs),
        "statuses": {
            label: {run.persona: sorted(run.statuses.get(label, ())) for run in runs} for label in sorted(operations)
        },
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "api_fuzz.json").write_text(json.dumps(figures, indent=2) + "\n")
    summary = {key: value for key, value in figures.items() if key != "statuses"}
    print(f"\nAPI fuzzing: {json.dumps(summary)}")  # noqa: T201 - the figures the README quotes

    problems = [error for run in runs for error in run.errors] + [line for run in runs for line in _failures(run)]
    assert not problems, "\n".join(problems)
    unreached = operations - reached
    assert not unreached, f"never answered past 401/404: {sorted(unreached)}"
    assert all(run.statistic.total_cases for run in runs), figures


def test_it_links_every_id_in_a_path_to_the_operations_that_answer_it(client: Any, db: None) -> None:
    """The schema's OpenAPI links (``enclave.api_schema.document_links``): every operation with an id in its path
    is the target of a link from a list or a create that answers that id, so a client (and the stateful
    fuzzing) can get there from what it has."""
    schema = client.get("/api/schema/", {"format": "json"}).json()
    targets = {
        link["operationId"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    }
    unlinked = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "{" in path and operation["operationId"] not in targets
    ]
    assert unlinked == []
    created = schema["paths"]["/api/v1/projects/{id}/releases/"]["post"]["responses"]["202"]["links"]
    assert created["projects_releases_retrieve"]["parameters"] == {
        "release_pk": "$response.body#/id",
        "id": "$request.path.id",
    }
