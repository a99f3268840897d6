"""Counting round trips to PostgreSQL as the wire sees them.

``RoundTripProxy`` is a TCP relay between Django and PostgreSQL. A round trip is the client sending after
the server last spoke (or first): one query and its answer, a BEGIN, a COMMIT, a health check's ``SELECT 1``,
whatever sent it (Django, psycopg or libpq). Several statements sent before the answer is awaited (a
pipeline) would count once, as they cost one wait; nothing the driver does is left out.

``wsgi_post`` calls Django's WSGI handler as a server does, so the request signals run (the connection's
health check at the start of a request included); Django's test client leaves that out.
"""

import io
import json
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.db import connection


class RoundTripProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._turns = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    @property
    def round_trips(self) -> int:
        with self._lock:
            return self._turns

    def reset(self) -> None:
        with self._lock:
            self._turns = 0

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            relay = threading.Thread(target=self._relay, args=(client, server), daemon=True)
            relay.start()
            self._threads.append(relay)

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        client_spoke_last = False
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:
                        if not client_spoke_last:
                            with self._lock:
                                self._turns += 1
                        client_spoke_last = True
                    else:
                        client_spoke_last = False
                    key.data.sendall(data)
        finally:
            selector.close()
            client.close()
            server.close()


@contextmanager
def through_proxy() -> Iterator[RoundTripProxy]:
    """Django's connection goes through a ``RoundTripProxy`` (with the production settings: persistent
    connection, health checks) until the block ends."""
    settings = connection.settings_dict
    saved = {key: settings.get(key) for key in ("HOST", "PORT", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    proxy = RoundTripProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    connection.close()
    settings.update({"HOST": "127.0.0.1", "PORT": str(proxy.port), "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True})
    try:
        yield proxy
    finally:
        connection.close()
        settings.update(saved)
        proxy.close()


_HANDLER: list[WSGIHandler] = []


def wsgi_post(path: str, body: dict[str, Any] | None, *, token: str) -> tuple[int, Any]:
    """POST ``body`` as JSON through Django's WSGI handler; the status and the decoded answer."""
    if not _HANDLER:
        _HANDLER.append(WSGIHandler())
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_AUTHORIZATION": f"Token {token}",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], object]:
        status.append(line)
        return lambda data: None

    response = _HANDLER[0](environ, start_response)
    try:
        content = b"".join(response)
    finally:
        response.close()  # request_finished, as a server sends it
    return int(status[0].split()[0]), json.loads(content) if content else None
