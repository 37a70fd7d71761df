"""A local HTTP receiver for webhooks (ours, Elementary's Slack alerts): it keeps what it got."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Received(list[dict[str, Any]]):
    """The JSON bodies POSTed so far, with the receiver's URL."""

    url: str = ""


@contextmanager
def webhook_receiver(path: str = "/hooks/T000/secret-token") -> Iterator[Received]:
    received = Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")  # what Slack answers

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield received
    finally:
        server.shutdown()
