#!/usr/bin/python3
"""Local HTTP test server for the end-to-end test of `mpimap fetch`
(tests/e2e/test_fetch.sh). Standard library only.

    httpserver.py --port-file FILE [--host 127.0.0.1]

Binds port 0, writes the port number to FILE (temporary file + rename) once
listening, serves until SIGTERM (or SIGINT). HTTP/1.1 with keep-alive; every
response has a Content-Length except /chunked. Endpoints (query parameters
optional):

  /ok/<...>/<name>?size=N&delay=MS  200 after MS ms; body = body(name, N),
                                    N defaults to 100. <name> is the last path
                                    segment, percent-decoded (so that a client
                                    that removes dot segments or not gets the
                                    same body).
  /status/<code>?delay=MS           that status, body "status <code>\\n"
  /redirect/<n>                     302 to /redirect/<n-1>; /redirect/0: 200 "done\\n"
  /goto?to=URL                      302 to URL
  /loop                             302 to /loop
  /slow?size=N&rate=BYTES_PER_S     200, Content-Length N, body trickled at that rate
  /hang                             reads the request, then waits up to 600 s
                                    (returns early when the client hangs up)
  /drop                             closes the connection without any response
  /flaky/<key>?fail=K&code=503      the first K requests for <key> get <code>,
                                    later ones 200 "ok\\n"
  /big?size=N                       200, Content-Length N, body = body("big", N)
  /chunked?size=N                   200, Transfer-Encoding: chunked,
                                    body = body("chunked", N)
  /stats                            JSON {"inflight_max", "inflight", "requests",
                                    "by_path": {path: count}}; counts every
                                    request except /stats and /reset; path is
                                    the request path without the query; a
                                    request is in flight from its parsing
                                    until just before the last bytes of its
                                    response are sent
  /reset                            zeroes the counters (and forgets /flaky keys)
Anything else: 404 "not found\\n".
"""

import argparse
import hashlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def body(name, size=100):
    """The deterministic body of /ok/<name>?size=SIZE: sha256(name) repeated,
    truncated to SIZE bytes (name: str, encoded as UTF-8 with
    surrogateescape, or bytes)."""
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    d = hashlib.sha256(name).digest()
    size = int(size)
    return (d * (size // len(d) + 1))[:size]


def body_sha256(name, size=100):
    return hashlib.sha256(body(name, size)).hexdigest()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.inflight = 0
        self.inflight_max = 0
        self.requests = 0
        self.by_path = {}
        self.flaky = {}

    def enter(self, path):
        with self.lock:
            self.inflight += 1
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            if self.inflight > self.inflight_max:
                self.inflight_max = self.inflight

    def leave(self):
        with self.lock:
            self.inflight -= 1

    def flaky_hit(self, key):
        with self.lock:
            n = self.flaky.get(key, 0) + 1
            self.flaky[key] = n
            return n

    def snapshot(self):
        with self.lock:
            return {"inflight_max": self.inflight_max, "inflight": self.inflight,
                    "requests": self.requests, "by_path": dict(self.by_path)}

    def reset(self):
        with self.lock:
            self.inflight_max = 0
            self.requests = 0
            self.by_path = {}
            self.flaky = {}


STATS = Stats()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY the
    # second waits for the client's delayed ACK (40 ms) on every request.
    disable_nagle_algorithm = True
    server_version = "mpimap-test-httpd/1"

    def log_message(self, format, *args):  # quiet
        pass

    # ------------------------------------------------------------ helpers
    def q(self, name, default=None, conv=int):
        v = self.query.get(name)
        if v is None:
            return default
        try:
            return conv(v[-1])
        except ValueError:
            return default

    def sleep_ms(self, ms):
        if ms and ms > 0:
            time.sleep(ms / 1000.0)

    def send(self, code, data=b"", headers=(), ctype="application/octet-stream"):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        no_body = code < 200 or code in (204, 304)
        if not no_body:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
        self.done()
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(data)

    def done(self):
        """This request no longer counts as in flight. Called before the last
        bytes of the response are sent: once the client has the whole
        response it may start another request at once, which must not find
        this one still counted (else /stats would see one more at once than
        the client ever had)."""
        if not self.left:
            self.left = True
            STATS.leave()

    def client_gone(self, timeout):
        """Wait up to TIMEOUT s; True as soon as the peer closed the connection."""
        try:
            r, _, _ = select.select([self.connection], [], [], timeout)
            if not r:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # ------------------------------------------------------------ dispatch
    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.left = True  # /stats and /reset are not counted
        if path == "/stats":
            self.send(200, (json.dumps(STATS.snapshot(), sort_keys=True) + "\n").encode(),
                      ctype="application/json")
            return
        if path == "/reset":
            STATS.reset()
            self.send(200, b"reset\n", ctype="text/plain")
            return
        STATS.enter(path)
        self.left = False
        try:
            self.route(path)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        finally:
            self.done()

    do_HEAD = do_GET

    def route(self, path):
        parts = path.split("/")  # "", first, ...
        first = parts[1] if len(parts) > 1 else ""
        if first == "ok" and len(parts) >= 3:
            name = urllib.parse.unquote(parts[-1], errors="surrogateescape")
            self.sleep_ms(self.q("delay", 0))
            self.send(200, body(name, self.q("size", 100)))
        elif first == "status" and len(parts) == 3 and parts[2].isdigit():
            code = int(parts[2])
            self.sleep_ms(self.q("delay", 0))
            self.send(code, ("status %d\n" % code).encode(), ctype="text/plain")
        elif first == "redirect" and len(parts) == 3 and parts[2].isdigit():
            n = int(parts[2])
            if n <= 0:
                self.send(200, b"done\n", ctype="text/plain")
            else:
                self.send(302, b"redirect\n", headers=[("Location", "/redirect/%d" % (n - 1))],
                          ctype="text/plain")
        elif path == "/goto":
            to = self.q("to", "/", conv=str)
            self.send(302, b"goto\n", headers=[("Location", to)], ctype="text/plain")
        elif path == "/loop":
            self.send(302, b"loop\n", headers=[("Location", "/loop")], ctype="text/plain")
        elif path == "/slow":
            self.slow(self.q("size", 1000), max(1, self.q("rate", 1000)))
        elif path == "/hang":
            self.close_connection = True
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if self.client_gone(1.0):
                    break
            self.done()
        elif path == "/drop":
            self.close_connection = True
            self.done()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif first == "flaky" and len(parts) == 3:
            n = STATS.flaky_hit(parts[2])
            if n <= self.q("fail", 1):
                code = self.q("code", 503)
                self.send(code, ("status %d\n" % code).encode(), ctype="text/plain")
            else:
                self.send(200, b"ok\n", ctype="text/plain")
        elif path == "/big":
            self.big(self.q("size", 1 << 20))
        elif path == "/chunked":
            self.chunked(self.q("size", 1 << 20))
        else:
            self.send(404, b"not found\n", ctype="text/plain")

    def slow(self, size, rate):
        data = body("slow", size)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        if size <= 0:
            self.done()
        self.end_headers()
        self.wfile.flush()
        step = 0.05
        piece = max(1, int(rate * step))
        for off in range(0, size, piece):
            if off + piece >= size:
                self.done()
            self.wfile.write(data[off:off + piece])
            self.wfile.flush()
            if off + piece < size:
                time.sleep(step * min(piece, size - off) / piece)

    def big(self, size):
        data = body("big", size)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        if size <= 0:
            self.done()
        self.end_headers()
        for off in range(0, size, 1 << 16):
            if off + (1 << 16) >= size:
                self.done()
            self.wfile.write(data[off:off + (1 << 16)])

    def chunked(self, size):
        data = body("chunked", size)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for off in range(0, size, 1 << 16):
            c = data[off:off + (1 << 16)]
            self.wfile.write(b"%x\r\n" % len(c) + c + b"\r\n")
        self.done()
        self.wfile.write(b"0\r\n\r\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Quiet when a client hangs up; anything else is a bug of this server.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    srv = Server((a.host, 0), Handler)
    port = srv.server_address[1]
    tmp = "%s.tmp.%d" % (a.port_file, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, a.port_file)

    def stop(signum, frame):
        # shutdown() waits for serve_forever to return: from another thread.
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
