"""The README's API example, run exactly as written against a live server and a real Celery worker (the
release is built on the worker): sign in, create a project, import, judge, build, download."""

import hashlib
import io
import re
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from accounts.models import AuditEvent
from releases.models import Release, ReleaseState
from tests.factories import PASSWORD, UserFactory

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The one Python block of the README's "From a script" section."""
    section = README.read_text().split("### From a script", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the README has no Python example under “From a script”"
    return found.group(1)


@pytest.mark.worker
def test_it_runs_the_readme_example_against_a_live_server(
    live_server: LiveServer, worker: subprocess.Popen[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    UserFactory.create(username="ops", is_staff=True)
    monkeypatch.setenv("ENCLAVE_URL", live_server.url)
    monkeypatch.setenv("ENCLAVE_USER", "ops")
    monkeypatch.setenv("ENCLAVE_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    namespace: dict[str, object] = {"__name__": "readme_example"}
    try:
        with redirect_stdout(printed):
            exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    except SystemExit as refused:  # the example's way of saying an API call was refused
        pytest.fail(f"the README example stopped: {refused}")

    release = Release.objects.get()
    assert release.state == ReleaseState.BUILT
    assert release.project.name.startswith("Card support ")
    folder = tmp_path / f"release-{release.hash[:12]}"
    assert printed.getvalue().strip() == f"release {release.hash[:12]}: {release.files.count()} files in {folder.name}/"
    for stored in release.files.all():
        downloaded = (folder / stored.path).read_bytes()
        assert hashlib.sha256(downloaded).hexdigest() == stored.sha256
    train = (folder / "trl_preference/train.jsonl").read_text().splitlines()
    assert len(train) == 3  # every judged comparison reached the release
    assert all("Please call us." in line for line in train)  # as the rejected answer
    assert AuditEvent.objects.filter(action="api_token.create", payload__via="sign-in").count() == 1
