"""gunicorn's access log without secrets: ``manage.py serve`` logs every request line, and an invite link
carries its token in the path (``/invite/<uid>/<token>/``). The token is written as ``…``.

Under ``manage.py serve`` gunicorn's own lines follow the settings' LOG_FILE and CONSOLE_LOG_LEVEL as the
app's do: all of them in the file, only warnings and errors on the console."""

import logging
import os
import re
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

INVITE_TOKEN = re.compile(r"(/invite/[^/\s]+/)(?!set-password/)[^/?#\s\"]+")


def redact(text: str) -> str:
    return INVITE_TOKEN.sub(r"\1…", text)


class AccessLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            if getattr(handler, "_enclave", False):  # from a previous setup: a config reload runs it again
                self.error_log.removeHandler(handler)
                handler.close()
        console_level = os.environ.get("CONSOLE_LOG_LEVEL")
        if console_level:
            for handler in self.error_log.handlers:
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    handler.setLevel(console_level)
        log_file = os.environ.get("LOG_FILE")
        if log_file:
            to_file = logging.FileHandler(log_file)
            to_file.setFormatter(logging.Formatter(self.error_fmt, self.datefmt))
            to_file._enclave = True  # type: ignore[attr-defined]
            self.error_log.addHandler(to_file)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return {
            name: redact(value) if isinstance(value, str) else value
            for name, value in super().atoms(resp, req, environ, request_time).items()
        }
