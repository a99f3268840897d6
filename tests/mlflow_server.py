"""A real MLflow tracking server for the tests (``mlflow server``: SQLite backend store, local artifacts, on a free
loopback port), run from its own virtual environment ``.venv-mlflow`` that ``make mlflow-server`` installs (the full
mlflow's pins conflict with Enclave's; Enclave itself has the client only). One per test that asks, so processes of
pytest-xdist never share one. Under ``CI=true`` a missing server environment fails the test; elsewhere it skips
with the command that installs it."""

import contextlib
import http.client
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.processes import free_port, wait_until
from tests.workers import ROOT

SERVER_VENV = Path(os.environ.get("ENCLAVE_MLFLOW_SERVER_VENV", ROOT / ".venv-mlflow"))


class MlflowServer:
    """Started with ``start()`` (it answers once ``wait()`` returns), stopped with ``stop()``: the whole process
    group, since ``mlflow server`` runs uvicorn as its child."""

    def __init__(self, folder: Path) -> None:
        executable = SERVER_VENV / "bin" / "mlflow"
        if not executable.exists():
            message = f"No MLflow tracking server at {executable}: run `make mlflow-server`."
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.executable = executable
        self.folder = folder
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")},
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # its job runner starts a dozen processes
        }
        self.process = subprocess.Popen(
            [
                str(self.executable), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination", str(self.folder / "artifacts"),
            ],
            cwd=self.folder, env=env, stdout=(self.folder / "server.log").open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"mlflow server exited with {self.process.returncode}:\n{self.log()}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def wait(self, timeout: float = 120) -> None:
        wait_until(self.answers, f"mlflow server on port {self.port}", timeout)

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # uvicorn, should it outlive the server's own process
            os.killpg(self.process.pid, signal.SIGKILL)
