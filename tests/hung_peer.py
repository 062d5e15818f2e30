"""A loopback peer that accepts TCP connections and never answers.

The outage that a refused port does not test: the kernel completes the handshake (the
listen backlog does), the client's request is read by nobody, and no byte ever comes
back. Only a client-side timeout ends the wait. Use it as a warehouse
(``postgresql://u@127.0.0.1:<port>/db``) or a registry (``http://127.0.0.1:<port>``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Generator
from contextlib import contextmanager


class HungPeer:
    """Listens on 127.0.0.1; accepts every connection, reads and discards, never writes."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hung-peer", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)  # kept open: the client sees a live, silent peer

    def start(self) -> HungPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def postgres_url(self, database: str = "warehouse") -> str:
        return f"postgresql://creditrisk@127.0.0.1:{self.port}/{database}"


@contextmanager
def hung_peer() -> Generator[HungPeer]:
    """A running :class:`HungPeer`, stopped on exit."""
    peer = HungPeer().start()
    try:
        yield peer
    finally:
        peer.stop()
