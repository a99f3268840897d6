"""The worker side's checks before a job trains: a base model's files on this gpu node match those checked."""

import shutil
from pathlib import Path

import pytest

from core.errors import DomainError
from tests.conftest import Personas
from tests.training.helpers import ready_model
from training.runner import base_model_check_here


def test_it_refuses_a_base_model_whose_files_differ_on_this_node(
    personas: Personas, tiny_model_dir: Path, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny"))
    model = ready_model(personas.staff, copy)
    weights = "model.safetensors"
    assert {entry["path"] for entry in model.files} >= {weights, "config.json", "tokenizer.json"}
    base_model_check_here(model)  # the files as checked

    with (copy / weights).open("ab") as stream:
        stream.write(b"\0")
    (copy / "tokenizer.json").unlink()
    with pytest.raises(DomainError) as refused:
        base_model_check_here(model)
    assert refused.value.message == (
        f"The files of base model {model} on this gpu node differ from those checked (missing: tokenizer.json; "
        f"another size: {weights}). Give every gpu node the same files at {copy}, or check the model again."
    )


def test_it_names_the_first_error_of_a_child_whose_launcher_summary_ends_the_log() -> None:
    """Two CPU ranks under ``accelerate launch``: the rank's error is followed by the launcher's summary, which is
    all the last lines hold; the reason names the error too."""
    from dataclasses import dataclass, field

    from training.watching import exit_reason, first_error_line

    log = [
        "Step 1/4",
        "[rank1]: Traceback (most recent call last):",
        '[rank1]:   File "trainer.py", line 10, in <module>',
        "[rank1]: RuntimeError: Connection reset by peer",
        *[f"summary line {n}" for n in range(12)],
    ]

    @dataclass
    class Seen:
        error: str = ""
        last_lines: list[str] = field(default_factory=lambda: log[-20:])
        first_error: str = field(default_factory=lambda: first_error_line(log))

    reason = exit_reason(1, Seen())
    assert reason.startswith("The training process failed (exit code 1).\n")
    assert "\nFirst error in the log: [rank1]: RuntimeError: Connection reset by peer\nLast log lines:\n" in reason
    assert reason.endswith("summary line 11")
    assert first_error_line(["FutureWarning: deprecated", "all well"]) == ""
    assert first_error_line(["terminate called after throwing an instance of 'c10::Error'"]).startswith("terminate")
