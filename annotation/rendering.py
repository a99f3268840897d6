"""Markdown as Enclave shows it: guidelines written by data leads and model output to be judged."""

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Raw HTML is off in the parser, and nh3 sanitises the output again: no script, no event handlers, and
# links keep only these schemes.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> SafeString:
    """Render untrusted Markdown (code blocks included) to sanitised HTML."""
    return mark_safe(nh3.clean(_markdown.render(text or ""), url_schemes=_URL_SCHEMES))  # noqa: S308 - sanitised
