"""Shared fixtures: the personas, the CI guard and service checks, and a real worker on the default queue.

Under ``CI=true`` the suite refuses to run unless it is on PostgreSQL and Redis, and both answer.
"""

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import Membership, Project, Role, User
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.scheduling import long_first
from tests.workers import start_worker, stop_worker

IN_CI = os.environ.get("CI", "").lower() == "true"

# Playwright's sync API keeps an event loop on the main thread; Django would refuse ORM calls there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the longest modules first, one share each (``tests/scheduling.py``). Every process
    collects, and orders, the same way: xdist requires identical collections."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers and workers > 1:
        items[:] = long_first(items, int(workers))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not IN_CI:
        return
    problems = []
    if not settings.DATABASE_IS_POSTGRES:
        problems.append("DATABASE_URL does not point at PostgreSQL")
    if not settings.REDIS_URL:
        problems.append("REDIS_URL is not set")
    else:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            problems.append(f"Redis at {settings.REDIS_URL} does not answer: {exc}")
    if problems:
        pytest.exit("CI=true needs PostgreSQL and Redis: " + "; ".join(problems), returncode=3)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache: cached figures (medians, pending marks) are per project id,
    and ids are reused once a test's transaction is rolled back."""
    from django.core.cache import cache

    from preferences.quality import process_medians_forget

    cache.clear()
    process_medians_forget()


@pytest.fixture
def on_postgres() -> None:
    """For tests of PostgreSQL-only behaviour. Under CI the session guard guarantees PostgreSQL."""
    if not settings.DATABASE_IS_POSTGRES:
        pytest.skip("needs PostgreSQL (set DATABASE_URL); CI always runs it")


@dataclass
class Personas:
    """Project A with one member per role, project B with the outsider, and site staff."""

    project: Project
    other_project: Project
    annotator: User
    reviewer: User
    data_lead: User
    project_admin: User
    approver: User
    outsider: User
    staff: User
    newcomer: User  # an active account in no project, for "add member" tests
    made: dict[str, Any] = field(default_factory=dict)  # objects routes build once per test

    def membership(self, user: User) -> Membership:
        return Membership.objects.get(project=self.project, user=user)

    def by_name(self, name: str) -> User:
        user = getattr(self, name)
        assert isinstance(user, User)
        return user


PERSONA_NAMES = ("annotator", "reviewer", "data_lead", "project_admin", "approver", "outsider", "staff")


def make_personas() -> Personas:
    project = ProjectFactory.create(name="Project A")
    other = ProjectFactory.create(name="Project B")
    people = {
        "annotator": Role.ANNOTATOR,
        "reviewer": Role.REVIEWER,
        "data_lead": Role.DATA_LEAD,
        "project_admin": Role.PROJECT_ADMIN,
        "approver": Role.APPROVER,
    }
    users = {name: UserFactory.create(username=name) for name in people}
    for name, role in people.items():
        MembershipFactory.create(project=project, user=users[name], role=role)
    outsider = UserFactory.create(username="outsider")
    MembershipFactory.create(project=other, user=outsider, role=Role.PROJECT_ADMIN)
    return Personas(
        project=project,
        other_project=other,
        outsider=outsider,
        staff=UserFactory.create(username="staff", is_staff=True),
        newcomer=UserFactory.create(username="newcomer"),
        **users,
    )


@pytest.fixture
def personas(db: None) -> Personas:
    return make_personas()


@pytest.fixture
def client_for(client: Client) -> "ClientFor":
    return ClientFor()


class ClientFor:
    """``client_for(user)`` gives a fresh Django test client logged in as that user."""

    def __call__(self, user: User | None) -> Client:
        c = Client()
        if user is not None:
            c.force_login(user)
        return c


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a locally trained tokenizer, loaded like any local base model."""
    from training.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def gpu_worker(transactional_db: None, tmp_path: Path) -> Iterator["subprocess.Popen[str]"]:
    """A real Celery worker on the gpu queue for one test, its output in ``proc.log_path``."""
    log_path = tmp_path / "gpu-worker.log"
    with log_path.open("w") as log:
        proc = start_worker("gpu", "pytest-gpu", output=log)
        proc.log_path = log_path
        yield proc
        stop_worker(proc, timeout=60)


@pytest.fixture
def worker(transactional_db: None) -> Iterator["subprocess.Popen[str]"]:
    """A real Celery worker on the default queue, its output on a pipe (read it with ``communicate``)."""
    proc = start_worker("default", "pytest")
    yield proc
    stop_worker(proc, timeout=30)
