"""The two ways into the peer readers: ``peer_scan`` for the mapping step, ``peer_read`` for the import."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from annotation.parsing import DEFAULT_LIMITS, Limits, LineError
from annotation.peers import argilla, label_studio, openassistant
from annotation.peers.records import FieldMap, PeerDropped, PeerFormat, PeerRecord, PeerScan


def peer_scan(path: Path, fmt: PeerFormat | str, *, limits: Limits = DEFAULT_LIMITS) -> PeerScan:
    """Read a peer tool's file once for the mapping step: its tool, project or dataset name, number of records,
    fields with a guessed ``FieldMap`` (Label Studio; Argilla's settings name them), and annotators with
    their counts. A file that cannot be read at all (not JSON, not a zip, no settings) comes back with
    ``errors`` rather than raising.

    Raises:
        ValueError: if ``fmt`` is not a ``PeerFormat``.
        OSError: if the file cannot be opened.
    """
    fmt = PeerFormat(fmt)
    if fmt is PeerFormat.LABEL_STUDIO:
        return label_studio.scan(Path(path), limits)
    if fmt is PeerFormat.ARGILLA:
        return argilla.scan(Path(path), limits)
    return openassistant.scan(Path(path), limits)


def peer_read(
    path: Path, fmt: PeerFormat | str, *, fields: FieldMap | None = None, limits: Limits = DEFAULT_LIMITS
) -> Iterator[PeerRecord | PeerDropped | LineError]:
    """Yield lazily, in file order, a ``PeerRecord`` per importable task or record, a ``PeerDropped`` per
    well-formed one that has nothing Enclave can take, and a ``LineError`` per malformed one. ``fields`` maps
    a Label Studio task's data (or an Argilla record's fields); None means the scan's guess.

    Raises:
        ValueError: at once, if ``fmt`` is not a ``PeerFormat``.
        OSError: while iterating, if the file cannot be read.
    """
    fmt = PeerFormat(fmt)
    if fmt is PeerFormat.LABEL_STUDIO:
        return label_studio.read(Path(path), fields, limits)
    if fmt is PeerFormat.ARGILLA:
        return argilla.read(Path(path), fields, limits)
    return openassistant.read(Path(path), limits)
