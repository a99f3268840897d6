"""What a base-model directory holds, read without loading the weights: the config, the tokenizer and its
chat template, safetensors headers (parameter count, dtype, linear module names), and a content hash of the
weight, config and tokenizer files, each streamed once through sha256.

Runs on a ``gpu`` worker, whose view of the shared models volume is the one that matters. Every load is
local: ``local_files_only=True`` under the offline environment."""

import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.hashing import WEIGHT_SUFFIX, content_hash, model_files
from training.environment import apply_offline_env

_NOT_TARGETS = {"lm_head", "embed_tokens", "wte", "wpe", "embed_positions", "score"}


class ModelDirectoryError(Exception):
    """The directory is not a usable base model; the message says what is missing."""


@dataclass
class ModelFacts:
    architecture: str
    model_type: str
    parameter_count: int
    dtype: str
    linear_modules: list[str]
    files: list[dict[str, Any]] = field(default_factory=list)
    content_hash: str = ""


TOKENIZER_NAMES = frozenset(
    {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
     "vocab.txt", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json"}
)  # fmt: skip


def tokenizer_hash(files: list[dict[str, Any]]) -> str:
    """The hash of a model directory's tokenizer files alone (``content_hash`` of them): two base models with
    equal tokenizers read text the same way, whatever their weights. Empty when no tokenizer file is listed."""
    chosen = [f for f in files if f["path"].rsplit("/", 1)[-1] in TOKENIZER_NAMES]
    return content_hash(chosen) if chosen else ""


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file: tensor names with dtype and shape (the weights are not read)."""
    with path.open("rb") as stream:
        raw = stream.read(8)
        if len(raw) != 8:
            raise ModelDirectoryError(f"{path.name} is not a safetensors file (too short).")
        (length,) = struct.unpack("<Q", raw)
        if length > 100 * 1024 * 1024:
            raise ModelDirectoryError(f"{path.name} is not a safetensors file (header of {length} bytes).")
        try:
            header: dict[str, Any] = json.loads(stream.read(length))
        except ValueError:
            raise ModelDirectoryError(f"{path.name} is not a safetensors file (unreadable header).") from None
    header.pop("__metadata__", None)
    return header


def inspect_model_directory(directory: Path) -> ModelFacts:
    """Check and describe a base-model directory; raises ``ModelDirectoryError`` with the reason."""
    apply_offline_env()  # before transformers is first imported in this process; loads are local-only anyway
    from transformers import AutoConfig, AutoTokenizer

    directory = Path(directory)
    if not directory.is_absolute():
        raise ModelDirectoryError("Give an absolute path.")
    if not directory.is_dir():
        raise ModelDirectoryError(f"{directory} is not a directory this worker can read.")
    if not (directory / "config.json").is_file():
        raise ModelDirectoryError("No config.json: this is not a transformers model directory.")
    weights = sorted(directory.glob(f"*{WEIGHT_SUFFIX}"))
    if not weights:
        pickled = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt")]
        if pickled:
            raise ModelDirectoryError(
                f"Weights must be safetensors; found only {', '.join(sorted(pickled))}. "
                "Convert them (model.save_pretrained(dir, safe_serialization=True)) and register again."
            )
        raise ModelDirectoryError("No *.safetensors weights in the directory.")
    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as exc:
        raise ModelDirectoryError(f"config.json does not load: {exc}") from None
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(name.endswith("ForCausalLM") for name in architectures):
        raise ModelDirectoryError(
            f"Not a causal language model: architectures {architectures or 'not set'} (need *ForCausalLM)."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:
        raise ModelDirectoryError(f"The tokenizer does not load: {exc}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ModelDirectoryError("The tokenizer has no chat template; conversations cannot be formatted.")
    try:
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}], tokenize=False
        )
    except Exception as exc:
        raise ModelDirectoryError(f"The chat template does not render a conversation: {exc}") from None

    parameters = 0
    dtypes: Counter[str] = Counter()
    modules: set[str] = set()
    for path in weights:
        for name, tensor in safetensors_header(path).items():
            count = 1
            for size in tensor.get("shape", []):
                count *= int(size)
            parameters += count
            dtypes[str(tensor.get("dtype", "?"))] += count
            parts = name.split(".")
            is_matrix = len(tensor.get("shape", [])) == 2 and parts[-1] == "weight" and len(parts) >= 2
            if is_matrix and parts[-2] not in _NOT_TARGETS:
                modules.add(parts[-2])

    files = model_files(directory)
    return ModelFacts(
        architecture=architectures[0],
        model_type=str(getattr(config, "model_type", "")),
        parameter_count=parameters,
        dtype=dtypes.most_common(1)[0][0] if dtypes else "",
        linear_modules=sorted(modules),
        files=files,
        content_hash=content_hash(files),
    )
