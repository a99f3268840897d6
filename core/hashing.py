"""Content hashes of model directories, pure (no Django, no torch): each file streamed once through sha256,
and one hash of the list. Base models (``training``) and the prompt-embedding model (``releases``) are hashed
the same way, so a model is named by what its files hold, wherever its directory lies."""

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WEIGHT_SUFFIX = ".safetensors"
# The files besides the weights that decide what a transformers model computes and how it reads text.
MODEL_FILE_NAMES = frozenset(
    {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
     "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "added_tokens.json", "chat_template.jinja",
     "chat_template.json", "model.safetensors.index.json"}
)  # fmt: skip
_CHUNK = 4 * 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(files: list[dict[str, Any]]) -> str:
    """One hash of a file list: sha256 over ``path<TAB>sha256`` lines in path order."""
    lines = "".join(f"{f['path']}\t{f['sha256']}\n" for f in sorted(files, key=lambda f: f["path"]))
    return hashlib.sha256(lines.encode()).hexdigest()


def model_file_paths(directory: Path, *, also: Iterable[str] = ()) -> list[Path]:
    """The files of a model directory that its hash covers: the top level's weights and ``MODEL_FILE_NAMES``,
    and the relative paths in ``also`` that exist (a sentence-transformers layout's module configs)."""
    chosen = [
        path
        for path in sorted(directory.iterdir())
        if path.is_file() and (path.suffix == WEIGHT_SUFFIX or path.name in MODEL_FILE_NAMES)
    ]
    chosen += [directory / name for name in sorted(set(also)) if (directory / name).is_file()]
    return chosen


def model_files(directory: Path, *, also: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``model_file_paths`` with each file's path relative to ``directory``, size and sha256."""
    return [
        {"path": path.relative_to(directory).as_posix(), "size_bytes": path.stat().st_size, "sha256": file_sha256(path)}
        for path in model_file_paths(directory, also=also)
    ]
