"""Fixtures of the annotation tests: the inputs the peers' own libraries write."""

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE_INPUTS = Path(__file__).parent / "peers_make" / "make_inputs.py"
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inputs written by the peers' libraries, once per test session: the pytest-xdist processes of a session
    share its temporary root, and the first to take the lock writes them (importing argilla takes seconds)."""
    if not PEERS_PYTHON.exists():
        message = f"{PEERS_PYTHON} is missing: run `make peers-venv` (the peers' libraries write these inputs)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.getbasetemp().parent / "peer-inputs"
    with (tmp_path_factory.getbasetemp().parent / "peer-inputs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "written").exists():
            command = [str(PEERS_PYTHON), "-W", "ignore", str(MAKE_INPUTS), str(out)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stderr[-3000:]
            (out / "written").touch()
    return out
