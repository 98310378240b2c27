"""What the local emulators (Discord, Stripe) share: a threaded HTTP server on 127.0.0.1
that can drop its keep-alive connections when it stops, and a handler that tracks them."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast


class TrackingServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections may idle in their threads: do not wait for them on close.
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class TrackedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    timeout = 60  # close idle connections
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK
        # add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cast(TrackingServer, self.server).track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(TrackingServer, self.server).track(self.connection, False)


class LoopbackService:
    """Start, stop and address of a local emulator served on 127.0.0.1 in a thread.
    Subclasses set ``_port`` (0 = any free port) and ``_stopping`` in ``__init__`` and
    build their server in ``_new_server``."""

    thread_name = "local-service"
    _port: int
    _stopping: threading.Event
    _server: TrackingServer | None = None
    _thread: threading.Thread | None = None

    def _new_server(self) -> TrackingServer:
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = server = self._new_server()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.1}, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes answers held by injected delays
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self.thread_name} is not started")
        return int(self._server.server_address[1])

    def serve_until_signal(self, describe: Callable[[], dict[str, Any]]) -> int:
        """Run alone (``python -m …``): print ``describe()`` (which may also set things up)
        as one JSON line, serve until Ctrl-C or SIGTERM, then stop."""
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        try:
            print(json.dumps(describe()), flush=True)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return 0
