"""gunicorn's access log without secrets: ``manage.py serve`` logs every request line, and an invite link
carries its token in the path (``/invite/<uid>/<token>/``). The token is written as ``…``."""

import re
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

INVITE_TOKEN = re.compile(r"(/invite/[^/\s]+/)(?!set-password/)[^/?#\s\"]+")


def redact(text: str) -> str:
    return INVITE_TOKEN.sub(r"\1…", text)


class AccessLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return {
            name: redact(value) if isinstance(value, str) else value
            for name, value in super().atoms(resp, req, environ, request_time).items()
        }
