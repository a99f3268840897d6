"""Where a generation run's prompts come from: a release's held-out split, a project's imported items, or an
uploaded prompt file (parsed like an import, with line-numbered errors, and scrubbed with the project's PII
policy). Each source gives the same list of dicts that ``generation_run_create`` takes:
``{"messages": [...], "metadata": {...}, "external_id": str, "item_id": int | None}``, already scrubbed."""

from typing import IO, Any

from accounts.models import Project
from annotation import selectors as annotation_selectors
from annotation.importing import project_scrubber
from annotation.models import Item, PiiMode
from annotation.parsing import ImportFormat, LineError, parse
from core.errors import DomainError
from releases.models import Release, ReleaseItem, ReleaseState

MAX_PROMPTS = 5000
UPLOAD_FORMATS = (ImportFormat.CHAT_JSONL, ImportFormat.PROMPT_RESPONSE_JSONL)
UPLOAD_FORMAT_LABELS = {
    ImportFormat.CHAT_JSONL: 'chat JSONL ({"messages": [...]} a line)',
    ImportFormat.PROMPT_RESPONSE_JSONL: 'prompt JSONL ({"prompt": "..."} a line; a "response" is ignored)',
}
_ERRORS_SHOWN = 20

Prompt = dict[str, Any]


def prompt_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation up to the answer to generate: trailing assistant turns (the reference answer) dropped."""
    turns = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    while turns and turns[-1]["role"] == "assistant":
        turns.pop()
    return turns


def _from_item(item: Item) -> Prompt:
    return {
        "messages": prompt_messages(item.messages),
        "metadata": dict(item.metadata or {}),
        "external_id": item.external_id,
        "item_id": item.pk,
    }


def _check_count(prompts: list[Prompt], where: str) -> list[Prompt]:
    if not prompts:
        raise DomainError(f"{where} holds no prompts to answer.", field="source")
    if len(prompts) > MAX_PROMPTS:
        raise DomainError(f"{where} holds {len(prompts):,} prompts; a run answers at most {MAX_PROMPTS:,}.")
    return prompts


def prompts_from_release(*, project: Project, release: Release) -> list[Prompt]:
    """The release's held-out (eval) split, in item order. Raises ``DomainError`` for another project's release,
    one that is not built, or an empty split."""
    if release.project_id != project.pk:
        raise DomainError("That release belongs to another project.", field="release")
    if release.state != ReleaseState.BUILT:
        raise DomainError(f"{release} is {release.get_state_display().lower()}; use a built release.", field="release")
    rows = ReleaseItem.objects.filter(release=release, split="eval").select_related("item").order_by("item_id")
    prompts = [_from_item(row.item) for row in rows[: MAX_PROMPTS + 1]]
    return _check_count([p for p in prompts if p["messages"]], f"The held-out split of {release}")


def prompts_from_items(*, project: Project, limit: int = MAX_PROMPTS) -> list[Prompt]:
    """The project's imported items (not the general-purpose mix-in), oldest first, at most ``limit``."""
    items = Item.objects.filter(project=project).exclude(kind="mixin").order_by("id")[: max(1, min(limit, MAX_PROMPTS))]
    return _check_count([p for p in map(_from_item, items) if p["messages"]], f"{project}")


def prompts_scrubbed(*, project: Project, prompts: list[Prompt]) -> list[Prompt]:
    """Prompts given as data (an evaluation's uploaded or API prompts) scrubbed with the project's PII policy, as
    an import would be, before anything stores them. Raises ``DomainError`` where the policy rejects PII."""
    config = annotation_selectors.annotation_settings(project)
    scrubber = project_scrubber(config)
    clean: list[Prompt] = []
    for number, prompt in enumerate(prompts, start=1):
        messages = prompt["messages"]
        result = scrubber.scrub([str(m.get("content", "")) for m in messages])
        if result.found and config.pii_mode == PiiMode.REJECT:
            raise DomainError(f"Prompt {number} contains PII; the project's policy rejects such prompts.", field="file")
        texts = result.texts
        clean.append({**prompt, "messages": [{**m, "content": texts[i]} for i, m in enumerate(messages)]})
    return clean


def prompts_from_upload(*, project: Project, upload: IO[bytes], fmt: str, source_name: str = "") -> list[Prompt]:
    """Parse an uploaded prompt file (chat or prompt/response JSONL; an answer in it is ignored) and scrub it
    with the project's PII policy. All or nothing: any unusable line refuses the whole file with the line
    numbers, as does PII in a project whose policy rejects it. Raises ``DomainError``."""
    if fmt not in UPLOAD_FORMATS:
        raise DomainError(f"Prompt files are {' or '.join(f.value for f in UPLOAD_FORMATS)}, not “{fmt}”.", field="fmt")
    config = annotation_selectors.annotation_settings(project)
    scrubber = project_scrubber(config)
    prompts: list[Prompt] = []
    errors: list[LineError] = []
    for entry in parse(upload, fmt):
        if isinstance(entry, LineError):
            errors.append(entry)
            continue
        result = scrubber.scrub([m.content for m in entry.messages])
        if result.found and config.pii_mode == PiiMode.REJECT:
            found = ", ".join(f"{k}×{n}" for k, n in sorted(result.counts.items()))
            errors.append(LineError(entry.line, f"contains PII ({found}); the project's policy rejects such prompts"))
            continue
        prompts.append(
            {
                "messages": [{"role": m.role, "content": result.texts[i]} for i, m in enumerate(entry.messages)],
                "metadata": entry.metadata,
                "external_id": entry.external_id or "",
                "item_id": None,
            }
        )
        if len(prompts) > MAX_PROMPTS:
            break
    if errors:
        shown = "; ".join(f"line {e.line}: {e.reason}" for e in errors[:_ERRORS_SHOWN])
        more = f" (and {len(errors) - _ERRORS_SHOWN} more)" if len(errors) > _ERRORS_SHOWN else ""
        fits = "" if prompts else _format_that_fits(upload, fmt)
        hint = f" Every line reads as {UPLOAD_FORMAT_LABELS[ImportFormat(fits)]}: choose that format." if fits else ""
        raise DomainError(
            f"{source_name or 'The file'} has {len(errors)} unusable line{'s' if len(errors) != 1 else ''}; "
            f"nothing was started.{hint} {shown}{more}",
            field="file",
        )
    return _check_count(prompts, source_name or "The file")


def _format_that_fits(upload: IO[bytes], fmt: str) -> str:
    """When no line fits the chosen format: the other prompt format that every line fits, or ``""``."""
    for other in UPLOAD_FORMATS:
        if other == fmt:
            continue
        try:
            upload.seek(0)
        except (AttributeError, OSError, ValueError):
            return ""
        entries = list(parse(upload, other))
        if entries and not any(isinstance(entry, LineError) for entry in entries):
            return other
    return ""
