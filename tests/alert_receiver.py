"""A real HTTP webhook receiver on loopback, recording what alerts post to it."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def kinds(self) -> list[str]:
        """The alert kind of each post, from the context block the notifier adds."""
        out = []
        for post in self.posts:
            context = [b for b in post.get("blocks", []) if b.get("type") == "context"]
            text = context[0]["elements"][0]["text"] if context else ""
            out.append(text.split("`")[1] if "`" in text else "")
        return out


@contextlib.contextmanager
def webhook_receiver(path: str = "/hooks/test") -> Generator[Receiver]:
    """Serve POSTs on 127.0.0.1 (a free port) until the block ends."""
    lock = threading.Lock()
    rec = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                status = rec.statuses.pop(0) if rec.statuses else 200
                rec.paths.append(self.path)
                rec.headers.append({k.lower(): v for k, v in self.headers.items()})
                rec.posts.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"error")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
