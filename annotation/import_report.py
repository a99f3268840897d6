"""An import's report as it is gathered: what was imported, refused and skipped, and why, by line."""

import hashlib
from typing import Any

from annotation.pii import Finding

REPORT_LIMIT = 1000  # rows of each list kept for the report; the counts go on


class ImportReport:
    """What an import found, line by line: counts, the first errors and skipped items, PII found uncertain (never
    its value), and the digest of the scrubbed content that identifies the import."""

    def __init__(self) -> None:
        self.lines = 0
        self.imported = 0
        self.bad = 0
        self.duplicates = 0
        self.pii_rejected = 0
        self.errors: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []  # duplicates and PII-rejected items: reported, not errors
        self.scrub_counts: dict[str, int] = {}
        # sha256 over the scrubbed content, record by record: what identifies the import. The uploaded file's
        # own hash is never kept, as it would be a fingerprint of unscrubbed text.
        self.content_digest = hashlib.sha256()
        self.uncertain_count = 0
        self.uncertain: list[dict[str, Any]] = []  # where, what type and shape: never the value
        # A peer tool's file: judgements and answers imported with the items, and what could not be mapped.
        self.judgements = 0
        self.answers = 0
        self.dropped_count = 0
        self.dropped: list[dict[str, Any]] = []

    def uncertain_value(self, line: int, finding: Finding) -> None:
        self.uncertain_count += 1
        if len(self.uncertain) < REPORT_LIMIT:
            self.uncertain.append(
                {
                    "line": line,
                    "type": finding.type,
                    "turn": finding.turn,
                    "column": finding.start,
                    "hint": finding.hint,
                    "scrubbed": not finding.kept,
                }
            )

    def error(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.errors) < REPORT_LIMIT:
            self.errors.append({"line": line, "reason": reason})

    def skip(self, line: int, reason: str, *, pii: bool = False) -> None:
        if pii:
            self.pii_rejected += 1
        else:
            self.duplicates += 1
        if len(self.skipped) < REPORT_LIMIT:
            self.skipped.append({"line": line, "reason": reason})

    def nothing_kept(self) -> None:
        """The import was rolled back: none of what it counted as imported was kept."""
        self.imported = self.judgements = self.answers = 0

    def drop(self, line: int, reason: str) -> None:
        """A well-formed part of a peer tool's file that was left out (an unsupported control, a cancelled or
        empty annotation, an annotator mapped to nobody): reported, not an error."""
        self.dropped_count += 1
        if len(self.dropped) < REPORT_LIMIT:
            self.dropped.append({"line": line, "reason": reason})
