"""Export formats. Each format is a small exporter behind one interface: ``write(split, row)`` for every
row, in order, then ``close()``, which returns the files it wrote. Rows stream through; no exporter holds
more than one batch of rows in memory.

Rows are plain dicts. SFT rows: ``id, item_id, messages, annotators, rubric_version, source``.
Preference rows: ``id, item_id, criterion, prompt, chosen, rejected, margin, agreement, tie, annotators``
(chosen and rejected are the answers' texts). Annotators appear only as stable pseudonyms.
"""

import hashlib
import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

SPLITS = ("train", "eval")
_HF_SHARD = "data-00000-of-00001.arrow"
_BATCH = 2000
_OPENAI_ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class WrittenFile:
    path: str  # relative to the release directory
    fmt: str
    split: str
    rows: int | None
    size_bytes: int
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", value.lower()).strip("-") or "criterion"


class Exporter:
    """The interface. ``root`` is the release's build directory."""

    fmt = ""
    label = ""
    kinds: tuple[str, ...] = ()

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, split: str, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> list[WrittenFile]:
        raise NotImplementedError


class _HashedLines:
    """A JSONL file that counts and hashes its bytes as they are written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.stream: IO[bytes] = path.open("wb", buffering=1024 * 1024)
        self.digest = hashlib.sha256()
        self.rows = 0
        self.size = 0

    def write(self, record: Any) -> None:
        line = orjson.dumps(record) + b"\n"
        self.stream.write(line)
        self.digest.update(line)
        self.rows += 1
        self.size += len(line)

    def close(self) -> None:
        self.stream.close()


class JsonlExporter(Exporter):
    """One JSONL file per split (and, for per-criterion sets, per criterion), each row built by ``record``."""

    directory = ""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.files: dict[tuple[str, str], _HashedLines] = {}
        for split in SPLITS:  # both splits always exist, even when empty
            self._file(split, "")

    def _file(self, split: str, suffix: str) -> _HashedLines:
        key = (split, suffix)
        if key not in self.files:
            name = f"{split}.{suffix}.jsonl" if suffix else f"{split}.jsonl"
            self.files[key] = _HashedLines(self.root / self.directory / name)
        return self.files[key]

    def record(self, row: dict[str, Any]) -> tuple[str, Any] | None:
        """(file suffix, JSON record) of a row, or None when this format leaves the row out."""
        raise NotImplementedError

    def write(self, split: str, row: dict[str, Any]) -> None:
        made = self.record(row)
        if made is not None:
            self._file(split, made[0]).write(made[1])

    def close(self) -> list[WrittenFile]:
        written = []
        for (split, _), lines in sorted(self.files.items()):
            lines.close()
            written.append(
                WrittenFile(
                    path=str(lines.path.relative_to(self.root)),
                    fmt=self.fmt,
                    split=split,
                    rows=lines.rows,
                    size_bytes=lines.size,
                    sha256=lines.digest.hexdigest(),
                )
            )
        return written


class TrlSftJsonl(JsonlExporter):
    fmt = directory = "trl_sft"
    label = "TRL SFT, conversational (messages)"
    kinds = ("sft",)

    def record(self, row: dict[str, Any]) -> tuple[str, Any]:
        return "", {"messages": row["messages"]}


class OpenAiChatJsonl(JsonlExporter):
    fmt = directory = "openai_chat"
    label = "OpenAI chat fine-tuning JSONL"
    kinds = ("sft",)

    def record(self, row: dict[str, Any]) -> tuple[str, Any] | None:
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        if any(m["role"] not in _OPENAI_ROLES for m in messages):
            return None
        return "", {"messages": messages}


class TrlPreferenceJsonl(JsonlExporter):
    fmt = directory = "trl_preference"
    label = "TRL preference, conversational (prompt, chosen, rejected, margin)"
    kinds = ("preference",)

    def record(self, row: dict[str, Any]) -> tuple[str, Any]:
        record: dict[str, Any] = {
            "prompt": row["prompt"],
            "chosen": _assistant(row["chosen"]),
            "rejected": _assistant(row["rejected"]),
        }
        if row["margin"] is not None:
            record["margin"] = row["margin"]
        suffix = "" if row["criterion"] == "overall" else _slug(row["criterion"])
        return suffix, record


class OpenAiPreferenceJsonl(JsonlExporter):
    """OpenAI's preference (DPO) fine-tuning format; overall preferences only."""

    fmt = directory = "openai_preference"
    label = "OpenAI preference fine-tuning JSONL"
    kinds = ("preference",)

    def record(self, row: dict[str, Any]) -> tuple[str, Any] | None:
        if row["criterion"] != "overall" or any(m["role"] not in _OPENAI_ROLES for m in row["prompt"]):
            return None
        return "", {
            "input": {"messages": row["prompt"]},
            "preferred_output": _assistant(row["chosen"]),
            "non_preferred_output": _assistant(row["rejected"]),
        }


_MESSAGE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SCHEMAS = {
    "sft": pa.schema(
        [
            ("id", pa.string()),
            ("item_id", pa.int64()),
            ("messages", _MESSAGE),
            ("annotators", pa.list_(pa.string())),
            ("rubric_version", pa.int64()),
            ("source", pa.string()),
        ]
    ),
    "preference": pa.schema(
        [
            ("id", pa.string()),
            ("item_id", pa.int64()),
            ("criterion", pa.string()),
            ("prompt", _MESSAGE),
            ("chosen", _MESSAGE),
            ("rejected", _MESSAGE),
            ("margin", pa.float64()),
            ("agreement", pa.float64()),
            ("tie", pa.bool_()),
            ("annotators", pa.list_(pa.string())),
        ]
    ),
}


class ArrowExporter(Exporter):
    """Parquet per split, plus a Hugging Face ``datasets`` directory (``load_from_disk``) made from an
    Arrow stream written beside it, so neither needs the whole set in memory."""

    fmt = "parquet"
    label = "Parquet, and a Hugging Face datasets directory"
    kinds = ("sft", "preference")

    def __init__(self, root: Path, kind: str, scratch: Path) -> None:
        super().__init__(root)
        self.kind = kind
        self.schema = SCHEMAS[kind]
        self.scratch = scratch
        self.pending: dict[str, list[bytes]] = {split: [] for split in SPLITS}
        self.longest = 0
        # Rows are collected as JSON lines and parsed by Arrow's reader against the schema: much faster than
        # building the batch from Python dicts (docs/PERFORMANCE.md). Keys a message has beyond role and
        # content are left out.
        self.parse = pa_json.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore")
        self.rows = dict.fromkeys(SPLITS, 0)
        (root / "parquet").mkdir(parents=True, exist_ok=True)
        scratch.mkdir(parents=True, exist_ok=True)
        self.parquet = {s: pq.ParquetWriter(root / "parquet" / f"{s}.parquet", self.schema) for s in SPLITS}
        self.hf_schema = self._hf_skeleton()
        self.arrow_sinks = {s: pa.OSFile(str(scratch / f"{s}.arrow"), "wb") for s in SPLITS}
        self.arrow = {s: pa.ipc.new_stream(self.arrow_sinks[s], self.hf_schema) for s in SPLITS}

    def _hf_skeleton(self) -> Any:
        """Let ``datasets`` write an empty directory with our features (its JSON files), and return the schema
        its shards carry (with the features metadata). The rows stream into one shard per split of that
        schema, so the directory is finished without reading the data back."""
        from datasets import Dataset, DatasetDict, Features

        empty = pa.Table.from_batches([], schema=self.schema)
        DatasetDict({s: Dataset(empty) for s in SPLITS}).save_to_disk(str(self.scratch / "hf_skeleton"))
        return Features.from_arrow_schema(self.schema).arrow_schema

    def _convert(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "sft":
            return {name: row[name] for name in self.schema.names}
        converted = {name: row.get(name) for name in self.schema.names}
        converted["chosen"] = _assistant(row["chosen"])
        converted["rejected"] = _assistant(row["rejected"])
        return converted

    def write(self, split: str, row: dict[str, Any]) -> None:
        line = orjson.dumps(self._convert(row))
        self.longest = max(self.longest, len(line))
        self.pending[split].append(line)
        if len(self.pending[split]) >= _BATCH:
            self._flush(split)

    def _flush(self, split: str) -> None:
        if not self.pending[split]:
            return
        table = pa_json.read_json(
            io.BytesIO(b"\n".join(self.pending[split])),
            read_options=pa_json.ReadOptions(block_size=max(1 << 20, self.longest + 1)),
            parse_options=self.parse,
        )
        self.parquet[split].write_table(table)
        self.arrow[split].write_table(table.replace_schema_metadata(self.hf_schema.metadata))
        self.rows[split] += table.num_rows
        self.pending[split] = []

    def close(self) -> list[WrittenFile]:
        written = []
        for split in SPLITS:
            self._flush(split)
            self.parquet[split].close()
            self.arrow[split].close()
            self.arrow_sinks[split].close()
            path = self.root / "parquet" / f"{split}.parquet"
            written.append(
                WrittenFile(
                    str(path.relative_to(self.root)),
                    "parquet",
                    split,
                    self.rows[split],
                    path.stat().st_size,
                    file_sha256(path),
                )
            )
        written += self._hf_directory()
        return written

    def _hf_directory(self) -> list[WrittenFile]:
        target = self.root / "hf_dataset"
        shutil.copytree(self.scratch / "hf_skeleton", target)
        for split in SPLITS:
            shutil.move(self.scratch / f"{split}.arrow", target / split / _HF_SHARD)
        written = []
        for path in sorted(target.rglob("*")):
            if not path.is_file():
                continue
            if path.name == "state.json":
                _stable_state(path)
            split = path.parent.name if path.parent != target else ""
            rows = self.rows[split] if path.suffix == ".arrow" and split in self.rows else None
            written.append(
                WrittenFile(
                    str(path.relative_to(self.root)), "hf_dataset", split, rows, path.stat().st_size, file_sha256(path)
                )
            )
        return written


def _stable_state(path: Path) -> None:
    """The empty skeleton lists no data file and carries a random fingerprint: name the shard, and derive the
    fingerprint from the data, so the same rows always give the same bytes (and the same release hash)."""
    state = json.loads(path.read_text())
    state["_data_files"] = [{"filename": _HF_SHARD}]
    digest = hashlib.sha256()
    for data_file in state.get("_data_files", []):
        digest.update(file_sha256(path.parent / data_file["filename"]).encode())
    state["_fingerprint"] = digest.hexdigest()[:16]
    path.write_text(json.dumps(state, indent=2, sort_keys=True))


def exporters_for(kind: str, root: Path, scratch: Path) -> list[Exporter]:
    made: list[Exporter] = [cls(root) for cls in JSONL_EXPORTERS if kind in cls.kinds]
    made.append(ArrowExporter(root, kind, scratch))
    return made


JSONL_EXPORTERS: tuple[type[JsonlExporter], ...] = (
    TrlSftJsonl,
    OpenAiChatJsonl,
    TrlPreferenceJsonl,
    OpenAiPreferenceJsonl,
)
FORMAT_LABELS: dict[str, str] = {cls.fmt: cls.label for cls in JSONL_EXPORTERS} | {
    "parquet": "Parquet (pyarrow)",
    "hf_dataset": "Hugging Face datasets directory (load_from_disk)",
}
