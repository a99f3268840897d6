"""Word from a lower floor that one of its rows reached an end (an import batch finished, a generation run or
training job ended, a release was built or failed, an evaluation finished, a promotion was decided), for a
higher floor that waits on it without the lower one importing it: a round (``rounds``) moves on when its step's
row ends, and the prompts of an import are embedded (``releases``). A listener registers itself when its app is
ready; it is called once the transaction that ended the row commits, and its failure is logged, never raised
into the lower floor's work (the higher floor also polls or makes up later: nothing is lost when a listener
fails)."""

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

Listener = Callable[[str, int], None]

_listeners: list[Listener] = []

KINDS = frozenset(
    {"import_batch", "generation_run", "scoring_run", "release", "training_job", "evaluation", "promotion"}
)


def followup_register(listener: Listener) -> None:
    """Add a listener, called with a kind (one of ``KINDS``) and the row's id."""
    if listener not in _listeners:
        _listeners.append(listener)


def ended(kind: str, pk: int) -> None:
    """Tell the listeners that row ``pk`` of ``kind`` ended, once the current transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown follow-up kind {kind!r}")
    if _listeners:
        transaction.on_commit(lambda: _call(kind, int(pk)))


def _call(kind: str, pk: int) -> None:
    for listener in list(_listeners):
        try:
            listener(kind, pk)
        except Exception:
            logger.exception("follow-up of %s #%s failed in %s", kind, pk, getattr(listener, "__name__", listener))
