from pathlib import Path

import pytest

from training.tiny_model import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a locally trained tokenizer, loaded like any local base model."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))
