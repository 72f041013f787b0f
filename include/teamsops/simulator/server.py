"""The simulator's HTTPS server: stdlib ``ThreadingHTTPServer`` + ``ssl``, HTTP/1.1 keep-alive, one thread per
connection (daemon threads), Content-Length (and chunked request bodies).

The server only translates between HTTP and :class:`~teamsops.simulator.http.SimRequest` /
:class:`~teamsops.simulator.http.SimResponse`; everything else (auth, faults, throttling, APIs) happens in
:class:`~teamsops.simulator.app.Simulator`. ``base_url`` of each request comes from its ``Host`` header, so links in
responses point at whatever address the client used.

The TLS handshake runs in the connection's own thread, so a slow or broken client never blocks ``accept``. A
:class:`~teamsops.simulator.faults.ConnectionReset` from the simulator closes the TCP connection with SO_LINGER 0,
which sends an RST (no HTTP response, no TLS close_notify): the client sees "connection reset by peer".
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from teamsops.simulator.app import Simulator
from teamsops.simulator.faults import ConnectionReset
from teamsops.simulator.http import Headers, SimRequest, SimResponse
from teamsops.simulator.tls import TlsMaterial

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 120.0  # an idle keep-alive connection is closed after this long
MAX_BODY_BYTES = 64 * 1024 * 1024


class SimulatorServer(ThreadingHTTPServer):
    """HTTPS front end of a :class:`Simulator`. Use :meth:`start` / :meth:`stop` (or ``serve_forever``)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, simulator: Simulator, tls: TlsMaterial, host: str = "127.0.0.1", port: int = 0) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self.simulator = simulator
        self.tls = tls
        self.ssl_context = tls.server_context()
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._serve_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        host = self.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> SimulatorServer:
        """Serve in a background daemon thread and return immediately."""
        self._serve_thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                              name=f"simulator-{self.port}", daemon=True)  # fmt: skip
        self._serve_thread.start()
        log.info("simulator listening on %s", self.base_url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every open connection and wait for the connection threads to end."""
        if self._serve_thread is not None:
            self.shutdown()
            self._serve_thread.join(timeout)
            self._serve_thread = None
        self.server_close()
        with self._conn_lock:
            connections, threads = list(self._connections), list(self._conn_threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading an idle keep-alive connection
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout)
        log.info("simulator on port %d stopped", self.port)

    # -- per-connection work ------------------------------------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._connection_thread, args=(request, client_address), daemon=True,
                                  name=f"simulator-{self.port}-conn-{client_address[1]}")  # fmt: skip
        with self._conn_lock:
            self._conn_threads.add(thread)
        thread.start()

    def _connection_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken connection must not take the server down
            log.debug("connection from %s failed", client_address, exc_info=True)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self._conn_threads.discard(threading.current_thread())

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms to each
        # response on a keep-alive connection.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        with self._conn_lock:
            self._connections.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "teamsops-simulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    server: SimulatorServer

    def do_GET(self) -> None:  # noqa: N802 - names fixed by BaseHTTPRequestHandler
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self._send(SimResponse(400, {"error": {"code": "BadRequest", "message": str(exc)}},
                                   Headers({"Content-Type": "application/json"})))  # fmt: skip
            self.close_connection = True
            return
        req = self._sim_request(body)
        try:
            resp = self.server.simulator.handle(req, client_host=self.client_address[0])
        except ConnectionReset:
            self._reset()
            return
        self._send(resp)

    def _sim_request(self, body: bytes) -> SimRequest:
        target = self.path
        if "://" in target.split("?", 1)[0]:  # absolute-form request target (proxies)
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        path, _, query = target.partition("?")
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.port}"
        return SimRequest(method=self.command.upper(), path=unquote(path) or "/", raw_query=query,
                          headers=Headers(self.headers.items()), body=body, base_url=f"https://{host}")  # fmt: skip

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise ValueError(f"Invalid or too large Content-Length: {length}")
        return self.rfile.read(int(length))

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            size = int(size_line or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError("Request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(16)

    def _send(self, resp: SimResponse) -> None:
        payload = resp.body_bytes()
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            if key not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST: SO_LINGER with a zero timeout, then close (no close_notify)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.rfile.close()  # releases the makefile reference so close() really closes the socket now
        try:
            self.connection.close()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        log.debug("%s %s", self.client_address[0], format % args)
