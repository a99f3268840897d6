"""Which import formats fit a project's work: comparisons, or conversations to annotate (SFT). The Imports page
and the API refuse a format of the other kind, saying where it belongs."""

from accounts.models import Project
from annotation import selectors
from annotation.parsing import ImportFormat
from annotation.peers.records import PeerFormat
from core.errors import DomainError


def format_misfit(fmt: str) -> str:
    """Why ``fmt`` does not fit a project whose work is of the other kind."""
    if fmt in (ImportFormat.COMPARISON_JSONL, PeerFormat.OPENASSISTANT):
        return (
            "This project holds conversations to annotate (SFT): import them as chat JSONL, prompt/response JSONL "
            "or CSV. Comparisons belong in a project of their own."
        )
    return (
        "This project holds comparisons: import them as comparison JSONL. Conversations to annotate (and a "
        "general-purpose mix-in for SFT releases) belong in an SFT project."
    )


def import_format_check(*, project: Project, fmt: str) -> None:
    """Refuse a format that does not fit the project's work: conversations into a project of comparisons,
    comparisons into an SFT project. Raises ``DomainError`` saying which formats fit."""
    known = fmt in ImportFormat.__members__.values() or fmt in selectors.PEER_FORMATS
    if known and fmt not in selectors.import_formats(project):
        raise DomainError(format_misfit(fmt), field="fmt")
