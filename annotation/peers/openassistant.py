"""OpenAssistant's published message trees (``*.trees.jsonl``, or gzipped, one ``ExportMessageTree`` a line):
each set of ranked siblings becomes an N-way comparison whose context is the path from the tree's prompt to
their parent, judged by the tree's ranking (a consensus of its rankers, so one annotator: ``consensus``)."""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotation.parsing import CandidateRecord, Invalid, Limits, LineError, Message, check_json_storable
from annotation.peers.common import MAX_ARRAY_BYTES, clean_text, count_candidates, json_values, parse_time, tiers_result
from annotation.peers.records import (
    AnnotatorSeen,
    Entry,
    PeerAnnotator,
    PeerDropped,
    PeerJudgement,
    PeerRecord,
    PeerScan,
)

CONSENSUS = PeerAnnotator(key="consensus", label="OpenAssistant ranking (consensus of its rankers)")
_ROLES = {"prompter": "user", "assistant": "assistant"}
_GZIP_MAGIC = b"\x1f\x8b"


def scan(path: Path, limits: Limits) -> PeerScan:
    """Count the ranked sibling sets a file holds; ``errors`` has the first lines that are not trees."""
    records = 0
    errors: list[LineError] = []
    for entry in read(path, limits):
        if isinstance(entry, PeerRecord):
            records += 1
        elif isinstance(entry, LineError) and len(errors) < 5 and entry.reason.startswith(("invalid JSON", "line")):
            errors.append(entry)
    seen = [AnnotatorSeen(CONSENSUS, judgements=records)] if records else []
    return PeerScan("OpenAssistant", "", records, [], None, seen, errors)


def read(path: Path, limits: Limits) -> Iterator[Entry]:
    """Yield, tree by tree and in each tree from the prompt down, one entry per set of ranked siblings."""
    with path.open("rb") as file:
        gzipped = file.read(2) == _GZIP_MAGIC
    if not gzipped:
        yield from _read_plain(path, limits)
        return
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "trees.jsonl"
        try:
            with gzip.open(path, "rb") as source, plain.open("wb") as target:
                # Chunk by chunk, so a small file that would unpack to terabytes stops at the cap.
                while chunk := source.read(1024 * 1024):
                    target.write(chunk)
                    if target.tell() > MAX_ARRAY_BYTES:
                        raise Invalid(f"the file unpacks to more than {MAX_ARRAY_BYTES:,} bytes")
        except (OSError, EOFError, Invalid) as exc:
            yield LineError(1, exc.reason if isinstance(exc, Invalid) else f"the gzip file is damaged ({exc})")
            return
        yield from _read_plain(plain, limits)


def _read_plain(path: Path, limits: Limits) -> Iterator[Entry]:
    for item in json_values(path, limits):
        if isinstance(item, LineError):
            yield item
            continue
        line, tree = item
        yield from _tree_entries(tree, line, limits)


def _tree_entries(tree: Any, line: int, limits: Limits) -> Iterator[Entry]:
    if not isinstance(tree, dict) or "message_tree_id" not in tree:
        yield LineError(line, "not an OpenAssistant message tree (no “message_tree_id”)")
        return
    tree_id = str(tree["message_tree_id"])
    prompt = tree.get("prompt")
    if not isinstance(prompt, dict):
        yield LineError(line, f"tree {tree_id} has no prompt message")
        return
    # Depth first, iteratively: a tree may be deeper than recursion would safely follow.
    stack: list[tuple[dict[str, Any], tuple[dict[str, Any], ...]]] = [(prompt, ())]
    while stack:
        node, ancestors = stack.pop()
        replies = node.get("replies") or []
        if not isinstance(replies, list):
            yield LineError(line, f"tree {tree_id}: the replies of message {node.get('message_id')} are not a list")
            continue
        path = (*ancestors, node)
        if any(isinstance(reply, dict) and reply.get("rank") is not None for reply in replies):
            yield _sibling_entry(tree, tree_id, path, replies, line, limits)
        stack.extend((reply, path) for reply in reversed(replies) if isinstance(reply, dict))


def _sibling_entry(
    tree: dict[str, Any], tree_id: str, path: tuple[dict[str, Any], ...], replies: list[Any], line: int, limits: Limits
) -> Entry:
    parent = path[-1]
    parent_id = str(parent.get("message_id"))
    where = f"tree {tree_id}, replies to message {parent_id}"
    if parent.get("role") != "prompter":
        return PeerDropped(line, f"{where}: a ranking of the prompter's replies, not of assistant answers")
    ranked = [reply for reply in replies if isinstance(reply, dict) and reply.get("rank") is not None]
    dropped = tuple(f"reply {reply.get('message_id')} was deleted" for reply in ranked if reply.get("deleted"))
    kept = [reply for reply in ranked if not reply.get("deleted")]
    if len(kept) < 2:
        return PeerDropped(line, f"{where}: fewer than two ranked replies remain ({'; '.join(dropped)})")
    try:
        count_candidates(len(kept), where)
        messages = tuple(_context_message(message, tree_id, limits) for message in path)
        if len(messages) > limits.max_messages:
            raise Invalid(f"{where}: {len(messages):,} messages; the limit is {limits.max_messages:,}")
        candidates = tuple(_candidate(reply, tree_id, limits) for reply in kept)
        tiers = _tiers(kept, where)
        metadata = {
            "message_tree_id": tree_id,
            "parent_message_id": parent_id,
            "lang": parent.get("lang"),
            "tree_state": tree.get("tree_state"),
            "review_counts": {str(reply.get("message_id")): reply.get("review_count") for reply in kept},
        }
        check_json_storable(metadata, f"{where}: metadata")
    except Invalid as exc:
        return LineError(line, exc.reason)
    judgement = PeerJudgement(CONSENSUS, tiers_result(tiers, len(kept)))
    return PeerRecord(
        line,
        messages,
        candidates=candidates,
        external_id=parent_id,
        metadata=metadata,
        judgements=(judgement,),
        dropped=dropped,
    )


def _context_message(message: dict[str, Any], tree_id: str, limits: Limits) -> Message:
    role = _ROLES.get(str(message.get("role")))
    label = f"tree {tree_id}, message {message.get('message_id')}"
    if role is None:
        raise Invalid(f"{label} has an unknown role {str(message.get('role'))[:40]!r}")
    return Message(role, clean_text(message.get("text"), label, limits))


def _candidate(reply: dict[str, Any], tree_id: str, limits: Limits) -> CandidateRecord:
    label = f"tree {tree_id}, message {reply.get('message_id')}"
    text = clean_text(reply.get("text"), label, limits)
    extra = {"message_id": reply.get("message_id"), "user_id": reply.get("user_id")}
    created = parse_time(reply.get("created_date"))
    if created is not None:
        extra["created_date"] = created.isoformat()
    if reply.get("synthetic"):
        extra["synthetic"] = True
    check_json_storable(extra, label)
    model = reply.get("model_name")
    return CandidateRecord(text, model=model.strip() if isinstance(model, str) else "", extra=extra)


def _tiers(replies: list[dict[str, Any]], where: str) -> list[list[int]]:
    """Group candidate ids by rank (0 is best); equal ranks share a tier."""
    by_rank: dict[int, list[int]] = {}
    for index, reply in enumerate(replies):
        rank = reply.get("rank")
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise Invalid(f"{where}: message {reply.get('message_id')} has a rank that is not a whole number")
        by_rank.setdefault(rank, []).append(index)
    return [by_rank[rank] for rank in sorted(by_rank)]
