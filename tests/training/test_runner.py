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
