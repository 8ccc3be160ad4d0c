#!/usr/bin/env python3
"""The gatewatch reliability suite: the real daemon against crashes and hostile peers.

Run it through scripts/reliability.sh [--quick]. Each check starts its own daemon(s), with a
temporary directory and config of its own, and prints exactly one line:

    PASS <check>: <figures>
    FAIL <check>: <why, with the figures>
    SKIP <check>: <why>

then `reliability: N passed, M failed, K skipped in S s`; the exit code is 1 if any check
failed. Python 3 standard library only.

Rules every check keeps:
- Traffic goes only to 127.0.0.0/8: every address this script binds or connects to passes
  through loopback(), which refuses anything else, and every daemon listens on 127.0.0.1:0.
- Every loop is bounded in count and in time.
- Every process started here is killed at the end, also on failure: each check runs in an
  ExitStack, the runner kills whatever is left after each check, and the daemons get SIGKILL
  from the kernel if this script dies first (PR_SET_PDEATHSIG; daemons are started from the
  main thread only, as that signal follows the thread that forked).
"""

import argparse
import collections
import contextlib
import ctypes
import http.client
import http.server
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

LOCAL = "127.0.0.1"
TOKEN = "reliability-token-0123456789"
MiB = 1 << 20


class Fail(Exception):
    """The check failed; the message says why, with its figures."""


class Skip(Exception):
    """The check cannot run here; the message says why."""


# ---------------------------------------------------------------------------------------------
# Small helpers


def loopback(host):
    """Returns `host` if it is an address in 127.0.0.0/8; anything else is a bug here."""
    parts = host.split(".")
    if (len(parts) != 4 or parts[0] != "127"
            or not all(p.isdigit() and int(p) < 256 for p in parts)):
        raise ValueError(f"refusing a non-loopback address: {host!r}")
    return host


def wait_for(predicate, timeout, step=0.1):
    """Calls `predicate` until it returns a true value or `timeout` seconds pass; returns the
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def connect(port, source=None, timeout=2.0, sndbuf=None):
    """A TCP connection to 127.0.0.1:port, optionally from another 127.0.0.x address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if source:
            s.bind((loopback(source), 0))
        s.settimeout(timeout)
        s.connect((loopback(LOCAL), port))
    except OSError:
        s.close()
        raise
    return s


class Response:
    def __init__(self, status, body, ms):
        self.status, self.body, self.ms = status, body, ms


def http_get(port, path, timeout=2.0):
    """GET on a fresh connection; status 0 (and the error as body) when there is no answer."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(loopback(LOCAL), port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        status, body = r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        status, body = 0, repr(e).encode()
    finally:
        conn.close()
    return Response(status, body.decode("utf-8", "replace"), (time.monotonic() - start) * 1000)


def status_of(raw):
    """The status code of a raw HTTP response, 0 if there is none."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else 0


def read_head(conn, limit=64 * 1024, timeout=2.0):
    """Reads a request or response head (bounded in bytes and time); returns what arrived."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and len(data) < limit and time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = conn.recv(4096)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def db_query(path, sql, params=()):
    """Runs one query on a read-only connection, closed at once."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def db_int(path, sql, default=None):
    """One integer from a read-only query; `default` if the database cannot be read yet."""
    try:
        value = db_query(path, sql)[0][0]
    except sqlite3.Error:
        return default
    return default if value is None else value


def format_ms(ms):
    """Unix milliseconds as gatewatch writes times (probes/clock.cc FormatTime)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def one_line(text, limit=400):
    text = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------
# Processes: the daemon


_children = []  # every process started here; kill_children() ends those still running
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(argv, stdout, stderr):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            preexec_fn=_die_with_parent)
    _children.append(proc)
    return proc


def kill_children():
    for proc in _children:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
    _children[:] = [p for p in _children if p.poll() is None]


class Metrics:
    """A parsed Prometheus text exposition."""

    _SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
    _LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text):
        self.samples = []  # (name, {label: value}, value)
        for line in text.splitlines():
            m = self._SAMPLE.match(line)
            if not m or line.startswith("#"):
                continue
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            self.samples.append((m.group(1), dict(self._LABEL.findall(m.group(2) or "")), value))

    def sum(self, name, **labels):
        return sum(v for n, l, v in self.samples
                   if n == name and all(l.get(k) == want for k, want in labels.items()))

    def by(self, name, label):
        """{label value: summed value} over the series of `name`."""
        out = collections.Counter()
        for n, l, v in self.samples:
            if n == name:
                out[l.get(label, "")] += v
        return out


class Daemon:
    """One `gatewatch run` whose config, database (gw.db unless told) and logs live in
    `workdir`. Start it from the main thread only (see the module comment)."""

    _LISTENING = re.compile(r"msg=listening addr=127\.0\.0\.1:(\d+)")

    def __init__(self, binary, workdir, name="gw"):
        self.binary, self.workdir, self.name = binary, workdir, name
        self.config_path = os.path.join(workdir, name + ".toml")
        self.db = os.path.join(workdir, name + ".db")
        self.proc = None
        self.port = None
        self.log_path = None
        self.starts = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    def start(self, config, wait=True, timeout=20):
        """Writes `config`, starts the daemon and, with `wait`, returns once it listens."""
        with open(self.config_path, "w") as f:
            f.write(config)
        self.starts += 1
        self.log_path = os.path.join(self.workdir, f"{self.name}.{self.starts}.log")
        with open(self.log_path, "wb") as log:
            self.proc = spawn([self.binary, "run", "--config", self.config_path],
                              subprocess.DEVNULL, log)
        self.port = None
        if not wait:
            return self

        def listening():
            m = self._LISTENING.search(self.log())
            if m:
                return int(m.group(1))
            return -1 if self.proc.poll() is not None else 0

        port = wait_for(listening, timeout, 0.05)
        if port <= 0:
            raise Fail(f"{self.name} did not start listening within {timeout} s "
                       f"(exit {self.proc.poll()}): {one_line(self.last_lines(3))}")
        self.port = port
        return self

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def last_lines(self, n):
        return "\n".join(self.log().splitlines()[-n:])

    def error_lines(self):
        return [l for l in self.log().splitlines() if "level=error" in l]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def get(self, path, timeout=2.0):
        return http_get(self.port, path, timeout)

    def metrics(self):
        r = self.get("/metrics", timeout=10)
        if r.status != 200:
            raise Fail(f"/metrics answered {r.status}: {one_line(r.body, 200)}")
        return Metrics(r.body)

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def wait_exit(self, timeout):
        """The exit code (negative: killed by that signal), or None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL if it is still running after `timeout`; the exit code."""
        if not self.alive():
            return self.proc.poll() if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(timeout)
        if code is None:
            self.kill()
        return code

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.wait_exit(10)


def toml_value(v):
    return json.dumps(v)  # strings, integers and booleans are written the same way in TOML


def config(db, monitors, interval="1s", timeout="800ms", server="", extra=""):
    """A daemon config: listener on 127.0.0.1:0, the database `db`, and `monitors` (dicts of
    monitor keys: name, url and any others)."""
    text = (f'[server]\nlisten = "127.0.0.1:0"\n{server}\n[storage]\npath = {toml_value(db)}\n\n'
            f'[defaults]\ninterval = "{interval}"\ntimeout = "{timeout}"\nretries = 0\n')
    for m in monitors:
        text += "\n[[monitors]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in m.items())
    return text + extra


def down_alert(name, monitors, notifier):
    return (f'\n[[alerts]]\nname = "{name}"\nmonitors = {toml_value(monitors)}\nkind = "down"\n'
            f'after = 2\nfor = "0s"\nresolve_for = "0s"\nnotify = ["{notifier}"]\n')


def webhook_notifier(name, url, timeout=None):
    text = f'\n[[notifiers]]\nname = "{name}"\ntype = "webhook"\nurl = "{url}"\n'
    return text + (f'timeout = "{timeout}"\n' if timeout else "")


def outbox_pending(db):
    return db_int(db, "SELECT count(*) FROM outbox WHERE delivered_ms IS NULL "
                      "AND given_up_ms IS NULL", default=-1)


def outbox_rows(db):
    """The firing and resolved messages of the outbox, in creation order, each with the key a
    webhook receiver can match it by."""
    rows = db_query(db, "SELECT id, kind, alert, monitor, message, delivered_ms, given_up_ms "
                        "FROM outbox WHERE kind IN ('firing', 'resolved') ORDER BY id")
    out = []
    for id_, kind, alert, monitor, message, delivered, given_up in rows:
        started = json.loads(message).get("started_ms", 0)
        out.append({"id": id_, "key": (kind, alert, monitor, format_ms(started)),
                    "delivered": delivered is not None, "given_up": given_up is not None})
    return out


def webhook_key(body):
    """The key of a webhook payload (alerting/notifiers/webhook.cc): status, alert, monitor,
    startsAt."""
    try:
        return (body["status"], body["groupLabels"]["alertname"], body["groupLabels"]["monitor"],
                body["alerts"][0]["startsAt"])
    except (KeyError, IndexError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------
# Loopback servers: HTTP targets, the webhook receiver, hostile raw-TCP targets


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up early is normal here


class HttpTarget:
    """An http.server on 127.0.0.1; `respond(path) -> (status, body bytes)` answers each GET."""

    def __init__(self, respond):
        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 5

            def do_GET(self):
                status, body = respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = _HttpServer((loopback(LOCAL), 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()

    def url(self, path="/"):
        return f"http://{LOCAL}:{self.port}{path}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Receiver:
    """A webhook receiver on 127.0.0.1. Each POST takes the next scripted answer, either
    (status, {header: value}) or ("hang", seconds): no answer, the connection closed after that
    long; once the script is used up, 200. Every answer comes `delay` seconds after the request.
    Records every request as {"t" (monotonic), "answer", "body" (parsed JSON)}. stop() and
    start() close and reopen it on the same port."""

    def __init__(self, script=(), delay=0.0):
        self.script = list(script)
        self.delay = delay
        self.requests = []
        self.lock = threading.Lock()
        self.server = None
        self.port = 0
        self.start()

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def do_POST(self):
                length = min(int(self.headers.get("Content-Length") or 0), MiB)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver.lock:
                    answer = receiver.script.pop(0) if receiver.script else (200, {})
                    receiver.requests.append({"t": time.monotonic(), "answer": answer[0],
                                              "body": body})
                time.sleep(receiver.delay)
                if answer[0] == "hang":
                    time.sleep(answer[1])
                    self.close_connection = True
                    return
                status, headers = answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = _HttpServer((loopback(LOCAL), self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self):
        return f"http://{LOCAL}:{self.port}/hook"

    def count(self):
        with self.lock:
            return len(self.requests)

    def answered_ok(self):
        """The requests answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.requests if isinstance(r["answer"], int)
                    and 200 <= r["answer"] < 300]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RawServer:
    """A TCP server on 127.0.0.1 running `handle(conn, stop_event)` on a thread per connection:
    the hostile targets. At most `max_conns` connections at once (more are closed at accept);
    each handler bounds its own time, and a socket timeout bounds every blocking call."""

    def __init__(self, handle, max_conns=32):
        self.handle = handle
        self.stopping = threading.Event()
        self.slots = threading.BoundedSemaphore(max_conns)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((loopback(LOCAL), 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self.slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            conn.settimeout(2)
            self.handle(conn, self.stopping)
        except OSError:
            pass
        finally:
            conn.close()
            self.slots.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.sock.close()


def _drip(conn, stop, data, every, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop.is_set():
        conn.sendall(data)
        time.sleep(every)


def slow_headers(conn, stop):
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    _drip(conn, stop, b"a", every=0.3, seconds=3)


def slow_body(conn, stop):
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    _drip(conn, stop, b"x" * 16, every=0.1, seconds=3)


def garbage(conn, stop):
    read_head(conn)
    conn.sendall(b"\x00\xff" + os.urandom(4094))


def reset_on_accept(conn, stop):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close: RST


def empty_reply(conn, stop):
    read_head(conn)  # then closed without a byte


_HUGE_HEADER = (b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * (200 * 1024) +
                b"\r\nContent-Length: 2\r\n\r\nok")


def huge_header(conn, stop):
    read_head(conn)
    conn.sendall(_HUGE_HEADER)


_CHUNK_64K = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"


def chunked_10mib(conn, stop):
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    end = time.monotonic() + 3
    for _ in range(160):  # 160 x 64 KiB = 10 MiB
        if stop.is_set() or time.monotonic() > end:
            return
        conn.sendall(_CHUNK_64K)
    conn.sendall(b"0\r\n\r\n")


def redirect_loop(conn, stop):
    read_head(conn)
    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n"
                 b"Connection: close\r\n\r\n")


_NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
              b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
              b"</body>\r\n</html>\r\n")


def html_502(conn, stop):
    read_head(conn)
    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_NGINX_502) + _NGINX_502)


HOSTILE = [("slow-headers", slow_headers), ("slow-body", slow_body), ("garbage", garbage),
           ("reset-on-accept", reset_on_accept), ("empty-reply", empty_reply),
           ("huge-header", huge_header), ("chunked-10mib", chunked_10mib),
           ("redirect-loop", redirect_loop), ("html-502", html_502)]


def refused_port(stack):
    """A port on 127.0.0.1 that refuses connections: bound, never listening, held until the
    stack closes so nothing else takes it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((loopback(LOCAL), 0))
    stack.callback(s.close)
    return s.getsockname()[1]


def ok_target(stack, body=b"ok"):
    return stack.enter_context(HttpTarget(lambda path: (200, body)))


# ---------------------------------------------------------------------------------------------
# Watching a running daemon


class Health:
    """/healthz asked about once a second while a check waits; every answer is counted."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.asked = 0
        self.bad = []  # "status after N s"
        self.max_ms = 0.0
        self.next = 0.0
        self.t0 = time.monotonic()

    def tick(self):
        """Asks /healthz if a second has passed; raises Fail if the daemon has exited."""
        if not self.daemon.alive():
            raise Fail(f"the daemon exited with {self.daemon.proc.poll()}: "
                       f"{one_line(self.daemon.last_lines(3))}")
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + 1.0
        r = self.daemon.get("/healthz", timeout=2)
        self.asked += 1
        self.max_ms = max(self.max_ms, r.ms)
        if r.status != 200:
            self.bad.append(f"{r.status} after {now - self.t0:.0f} s")

    def wait(self, predicate, timeout, step=0.1):
        """wait_for(predicate) while ticking."""
        def checked():
            self.tick()
            return predicate()
        return wait_for(checked, timeout, step)

    def summary(self):
        ok = self.asked - len(self.bad)
        return f"/healthz {ok}/{self.asked} 200 (max {self.max_ms:.0f} ms)"


def readyz(daemon):
    r = daemon.get("/readyz", timeout=2)
    return r.status, r.body


# ---------------------------------------------------------------------------------------------
# The checks. Each returns its figures (PASS) or raises Fail / Skip.


def check_kill9(ctx):
    rounds = 4 if ctx.quick else 20
    flip = {"on": True}

    def respond(path):
        if path.startswith("/flip") and flip["on"] and int(time.time() / 3) % 2 == 0:
            return 502, b"bad gateway"
        return 200, b"ok"

    with contextlib.ExitStack() as stack:
        target = stack.enter_context(HttpTarget(respond))
        # Answers take 300 ms, so some kills land while a delivery is in flight.
        hook = stack.enter_context(Receiver(delay=0.3))
        daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir))
        db = daemon.db
        monitors = ([{"name": f"flip-{c}", "url": target.url(f"/flip-{c}")} for c in "ab"] +
                    [{"name": f"steady-{i}", "url": target.url(f"/steady-{i}")} for i in range(4)])
        text = (config(db, monitors) + down_alert("flip-down", ["flip-*"], "hook") +
                webhook_notifier("hook", hook.url()))

        committed = 0
        for i in range(rounds):
            daemon.start(text)
            time.sleep(random.uniform(0.5, 3.0))
            try:
                count, max_id = db_query(
                    db, "SELECT count(*), coalesce(max(id), 0) FROM results")[0]
            except sqlite3.Error as e:
                raise Fail(f"round {i + 1}: cannot read the results table: {e}")
            if not daemon.alive():
                raise Fail(f"round {i + 1}: the daemon exited with {daemon.proc.poll()}: "
                           f"{one_line(daemon.last_lines(3))}")
            daemon.kill()
            con = sqlite3.connect(db, timeout=10)
            try:
                present = con.execute("SELECT count(*) FROM results WHERE id <= ?",
                                      (max_id,)).fetchone()[0]
                integrity = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
            finally:
                con.close()
            if integrity != ["ok"]:
                raise Fail(f"round {i + 1}: integrity_check after kill -9: "
                           f"{one_line('; '.join(integrity), 300)}")
            committed = count
            if present < count:
                raise Fail(f"round {i + 1}: {count - present} of {count} committed rows "
                           f"(id <= {max_id}) missing after kill -9")

        # Run normally: at least one incident fires and resolves, then the target stays up
        # and every pending message goes out.
        daemon.start(text)
        health = Health(daemon)

        def some_of_each():
            kinds = collections.Counter(r["key"][0] for r in outbox_rows(db))
            return kinds["firing"] >= 1 and kinds["resolved"] >= 1
        if not health.wait(some_of_each, 30, 0.5):
            raise Fail(f"no firing and resolved message in the outbox after 30 s "
                       f"(outbox: {len(outbox_rows(db))} rows)")
        flip["on"] = False
        drain_start = time.monotonic()
        settled = health.wait(
            lambda: outbox_pending(db) == 0 and
            db_int(db, "SELECT count(*) FROM alert_state WHERE state != 0", default=1) == 0,
            60, 0.25)
        drain_s = time.monotonic() - drain_start
        code = daemon.stop()
        rows = outbox_rows(db)
        if not settled:
            raise Fail(f"the outbox still had {outbox_pending(db)} pending after 60 s")

        seen = collections.Counter(webhook_key(r["body"]) for r in hook.answered_ok())
        undelivered = [r for r in rows if not r["delivered"]]
        missing = [r for r in rows if seen[r["key"]] == 0]
        duplicates = sum(n - 1 for n in seen.values() if n > 1)
        # Two outbox rows for one message would be a repeated alert, not a redelivery.
        repeated = len(rows) - len({r["key"] for r in rows})
        kinds = collections.Counter(r["key"][0] for r in rows)
        figures = (f"{rounds} kill -9 rounds, every committed row present after each "
                   f"({committed} at the last kill), lost 0, "
                   f"integrity ok {rounds}/{rounds}; outbox firing {kinds['firing']} "
                   f"resolved {kinds['resolved']}, undelivered {len(undelivered)}, "
                   f"not received {len(missing)}, duplicates {duplicates} (repeated outbox "
                   f"rows {repeated}), "
                   f"drained in {drain_s:.1f} s, SIGTERM exit {code}")
        if undelivered or missing or repeated:
            example = (undelivered or missing)[0]["key"] if undelivered or missing else ""
            raise Fail(figures + (f"; e.g. {example}" if example else ""))
        return figures


def check_receiver_faults(ctx):
    failing = {"on": True}
    script = [(500, {}), (500, {}), (429, {"Retry-After": "2"}), ("hang", 5)]
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(HttpTarget(
            lambda path: (502, b"bad gateway") if failing["on"] else (200, b"ok")))
        hook = stack.enter_context(Receiver(script))
        daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir))
        db = daemon.db
        monitors = [{"name": f"svc-{c}", "url": target.url(f"/svc-{c}")} for c in "ab"]
        daemon.start(config(db, monitors) + down_alert("svc-down", ["svc-*"], "hook") +
                     webhook_notifier("hook", hook.url(), timeout="2s"))
        health = Health(daemon)

        def count(kind):
            return sum(1 for r in outbox_rows(db) if r["key"][0] == kind)
        if not health.wait(lambda: count("firing") >= 2, 30, 0.2):
            raise Fail(f"the alerts did not fire within 30 s ({count('firing')} firing messages)")
        failing["on"] = False  # both resolve next; their messages queue behind the firings

        # 500, 500, 429 + Retry-After: 2, then a hang past the notifier timeout (2 s).
        if not health.wait(lambda: hook.count() >= len(script), 60, 0.05):
            raise Fail(f"the receiver saw {hook.count()} of the {len(script)} scripted "
                       f"requests within 60 s")
        hook.stop()  # connection refused from now on

        def head():
            rows = db_query(db, "SELECT attempts, last_error FROM outbox WHERE delivered_ms IS "
                                "NULL AND given_up_ms IS NULL ORDER BY id LIMIT 1")
            return rows[0] if rows else (0, "")
        if not health.wait(lambda: head()[0] >= len(script) + 1, 40, 0.1):
            raise Fail(f"no delivery attempt against the stopped receiver within 40 s "
                       f"(head message: attempts {head()[0]}, last error {head()[1]!r})")
        refused_error = head()[1]
        hook.start()
        healthy_at = time.monotonic()
        if not health.wait(lambda: count("resolved") >= 2 and outbox_pending(db) == 0, 60, 0.2):
            raise Fail(f"{outbox_pending(db)} messages still pending 60 s after the receiver "
                       f"recovered")
        results = daemon.metrics().by("gatewatch_notifications_total", "result")
        code = daemon.stop()

        rows = outbox_rows(db)
        by_key = {r["key"]: r["id"] for r in rows}
        delivered_keys = []
        for r in hook.answered_ok():
            key = webhook_key(r["body"])
            if key not in delivered_keys:
                delivered_keys.append(key)
        first = [r["t"] for r in hook.answered_ok() if r["t"] >= healthy_at]
        to_first = f"{first[0] - healthy_at:.1f} s" if first else "never"
        ids = [by_key.get(k) for k in delivered_keys]
        in_order = None not in ids and ids == sorted(ids)
        per_monitor_ok = all(
            [k[0] for k in delivered_keys if k[2] == m] == ["firing", "resolved"]
            for m in ("svc-a", "svc-b"))
        counts = " ".join(f"{k}={int(v)}" for k, v in sorted(results.items()))
        figures = (f"{len(rows)} messages, {sum(r['delivered'] for r in rows)} delivered, "
                   f"in order {'yes' if in_order and per_monitor_ok else 'NO'}; receiver "
                   f"healthy -> first delivery {to_first}; refused attempt: "
                   f"{one_line(refused_error, 80)!r}; notifications_total {counts}; "
                   f"{health.summary()}; SIGTERM exit {code}")
        problems = []
        if len(rows) != 4 or not all(r["delivered"] for r in rows):
            problems.append("not every message was delivered")
        if set(by_key) - set(delivered_keys):
            problems.append("the receiver did not get every message")
        if not (in_order and per_monitor_ok):
            problems.append(f"delivered out of order: {[(k[0], k[2]) for k in delivered_keys]}")
        if results["retry"] < 4 or results["rate_limited"] < 1:
            problems.append("expected retry >= 4 (500, 500, timeout, refused) and "
                            "rate_limited >= 1")
        if problems:
            raise Fail("; ".join(problems) + ": " + figures)
        return figures


def check_hostile_targets(ctx):
    duration = 30 if ctx.quick else 300
    with contextlib.ExitStack() as stack:
        monitors = []
        for name, handle in HOSTILE:
            server = stack.enter_context(RawServer(handle))
            monitor = {"name": name, "url": f"http://{LOCAL}:{server.port}/{name}"}
            if name == "redirect-loop":
                monitor["follow_redirects"] = True
            monitors.append(monitor)
        monitors.append({"name": "refused", "url": f"http://{LOCAL}:{refused_port(stack)}/"})
        daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir))
        daemon.start(config(daemon.db, monitors, timeout="900ms"))
        health = Health(daemon)
        start = time.monotonic()
        rss = []
        for _ in range(duration // 5 + 1):  # one RSS sample every 5 s, /healthz every second
            rss.append(daemon.rss_mb())
            sample_at = start + 5 * len(rss)
            if sample_at > start + duration:
                break
            health.wait(lambda: False, max(0.0, sample_at - time.monotonic()), 0.2)
        health.tick()
        outcomes = daemon.metrics().by("gatewatch_probes_total", "outcome")
        code = daemon.stop()

        third = max(1, len(rss) // 3)
        first_max, last_max = max(rss[:third]), max(rss[-third:])
        leveled = last_max <= 1.25 * first_max + 5
        figures = (f"{len(monitors)} hostile targets for {duration} s at 1 s: outcomes "
                   + " ".join(f"{k}={int(v)}" for k, v in sorted(outcomes.items()))
                   + f"; {health.summary()}; RSS first {rss[0]:.1f} MB, last {rss[-1]:.1f} MB, "
                   f"max {max(rss):.1f} MB ({len(rss)} samples; max of last third "
                   f"{last_max:.1f} vs first third {first_max:.1f}); SIGTERM exit {code}")
        if health.bad or not leveled:
            raise Fail(("RSS kept growing; " if not leveled else "")
                       + (f"/healthz failed: {', '.join(health.bad[:5])}; " if health.bad else "")
                       + figures)
        return figures


def check_slowloris(ctx):
    paths = ("/healthz", "/readyz", "/metrics")
    with contextlib.ExitStack() as stack:
        target = ok_target(stack)
        daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir))
        daemon.start(config(daemon.db, [{"name": "self", "url": target.url("/")}],
                            interval="5s", timeout="2s",
                            server='request_timeout = "5s"\nmax_connections = 1100\n'))
        slow = []
        stack.callback(lambda: [s.close() for s in slow])
        # 1,000 connections from ten addresses (100 each, under max_connections_per_peer),
        # each inside an unfinished header line.
        for i in range(1000):
            try:
                s = connect(daemon.port, source=f"127.0.0.{11 + i // 100}", timeout=2)
                slow.append(s)
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")
                s.setblocking(False)
            except OSError as e:
                raise Fail(f"slow connection {i + 1} failed: {e}")
        opened = time.monotonic()
        closed = set()  # indexes of connections the daemon closed
        poller = select.poll()
        for i, s in enumerate(slow):
            poller.register(s, select.POLLIN)
        fd_index = {s.fileno(): i for i, s in enumerate(slow)}
        last_drip = opened

        def drip():
            nonlocal last_drip
            for i, s in enumerate(slow):
                if i not in closed:
                    try:
                        s.send(b"a")
                    except OSError:
                        closed.add(i)
            last_drip = time.monotonic()

        def reap():
            for fd, _ in poller.poll(0):
                i = fd_index[fd]
                try:
                    slow[i].recv(4096)
                except OSError:
                    pass
                closed.add(i)
                poller.unregister(fd)

        took = {p: [] for p in paths}
        bad = []
        for round_ in range(10):  # spread over 3 s, between the drips
            for path in paths:
                if time.monotonic() - last_drip >= 2:
                    drip()
                r = daemon.get(path, timeout=2)
                took[path].append(r.ms)
                if r.status != 200 or r.ms > 1000:
                    bad.append(f"{path} {r.status} in {r.ms:.0f} ms")
            time.sleep(max(0.0, opened + 0.3 * (round_ + 1) - time.monotonic()))
        measured_in = time.monotonic() - opened
        early_closes = len(closed)

        # request_timeout = 5s from each connection's first byte: all closed by then + 5 s.
        deadline = opened + 5 + 5
        timeouts = 0
        while time.monotonic() < deadline:
            if time.monotonic() - last_drip >= 2:
                drip()
            reap()
            timeouts = daemon.metrics().sum("gatewatch_http_connections_closed_total",
                                            reason="timeout")
            if timeouts >= 1000:
                break
            time.sleep(0.25)
        closed_after = time.monotonic() - opened
        reap()
        alive = daemon.alive()
        maxima = ", ".join(f"{p} max {max(took[p]):.0f} ms" for p in paths)
        figures = (f"1000 slow connections from 127.0.0.11-20: {maxima} "
                   f"({30 - len(bad)}/30 200 within 1 s, measured in {measured_in:.1f} s, "
                   f"{early_closes} slow ones closed meanwhile); closed for timeout "
                   f"{int(timeouts)} by {closed_after:.1f} s after the last opened "
                   f"(request_timeout 5s), {len(closed)} seen closed by the client")
        if bad or timeouts < 1000 or not alive:
            raise Fail(("; ".join(bad[:5]) + "; " if bad else "")
                       + ("" if alive else "the daemon died; ") + figures)
        return figures


def stream_post(port, head, chunk, limit=400 * MiB, seconds=15.0):
    """Sends `head`, then `chunk` after `chunk` (at most `limit` bytes, for at most `seconds`)
    until the response arrives or the socket fails. Returns (status, body bytes sent before
    the answer, seconds to the answer)."""
    s = connect(port, sndbuf=128 * 1024)
    try:
        s.sendall(head)
        start = time.monotonic()
        s.setblocking(False)
        poller = select.poll()
        poller.register(s, select.POLLIN | select.POLLOUT)
        sent = 0
        while sent < limit and time.monotonic() - start < seconds:
            events = poller.poll(200)
            flags = events[0][1] if events else 0
            if flags & (select.POLLIN | select.POLLHUP | select.POLLERR):
                break
            if flags & select.POLLOUT:
                try:
                    sent += s.send(chunk)
                except BlockingIOError:
                    pass
                except OSError:
                    break
        answered = time.monotonic() - start
        s.setblocking(True)
        return status_of(read_head(s, timeout=2)), sent, answered
    finally:
        s.close()


def check_bodies(ctx):
    ingest = (b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/json\r\n")
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    raw = b"x" * 0x10000
    cases = [
        ("no token, chunked", ingest + b"Transfer-Encoding: chunked\r\n\r\n", chunk, 401),
        ("wrong token, Content-Length 419430400",
         ingest + b"Authorization: Bearer wrong-token-0123456789\r\n"
                  b"Content-Length: 419430400\r\n\r\n", raw, 401),
        ("token, endless chunked", ingest + b"Authorization: Bearer " + TOKEN.encode() +
         b"\r\nTransfer-Encoding: chunked\r\n\r\n", chunk, 413),
    ]
    with contextlib.ExitStack() as stack:
        target = ok_target(stack)
        daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir))
        daemon.start(config(daemon.db, [{"name": "self", "url": target.url("/")}],
                            interval="5s", timeout="2s", server=f'api_token = "{TOKEN}"\n'))
        time.sleep(1)
        rss_before = daemon.rss_mb()
        parts, problems = [], []
        for label, head, body, want in cases:
            status, sent, seconds = stream_post(daemon.port, head, body)
            parts.append(f"{label}: {status} after {sent / MiB:.2f} MiB in {seconds * 1000:.0f} ms")
            if status != want:
                problems.append(f"{label}: got {status}, expected {want}")
            elif want == 401 and seconds > 1:
                problems.append(f"{label}: the 401 took {seconds:.1f} s")
            elif want == 413 and sent > 8 * MiB:
                problems.append(f"{label}: 413 only after {sent / MiB:.1f} MiB")
        alive = daemon.alive()
        rss_after = daemon.rss_mb() if alive else 0
        figures = "; ".join(parts) + f"; RSS {rss_before:.1f} -> {rss_after:.1f} MB"
        if not alive:
            problems.append("the daemon died")
        if rss_after - rss_before >= 50:
            problems.append("RSS grew by 50 MB or more")
        if problems:
            raise Fail("; ".join(problems) + ": " + figures)
        return figures


def check_disk_full(ctx):
    if os.geteuid() != 0:
        raise Skip("not root: mounting a tmpfs needs root")
    with contextlib.ExitStack() as stack:
        mnt = os.path.join(ctx.dir, "tmpfs")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise Skip(f"mount -t tmpfs failed: {one_line(r.stderr, 200)}")

        def unmount():
            if subprocess.run(["umount", mnt], capture_output=True, timeout=30).returncode:
                subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)
        stack.callback(unmount)  # registered first: runs after the daemon is killed

        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (3 * MiB))
        big = b"x" * (256 * 1024)
        target = ok_target(stack, big)
        daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir))
        db = os.path.join(mnt, "gw.db")
        monitors = [{"name": f"m{i:03d}", "url": target.url(f"/m{i}"), "max_body": "1KiB"}
                    for i in range(50)]
        daemon.start(config(db, monitors, timeout="900ms"))
        health = Health(daemon)
        start = time.monotonic()
        rows = lambda: db_int(db, "SELECT count(*) FROM results", default=0)

        seen = {}

        def not_ready():
            status, body = readyz(daemon)
            seen["body"] = body
            return status == 503 and "database" in body
        if not health.wait(not_ready, 90, 0.25):
            usage = shutil.disk_usage(mnt)
            raise Fail(f"/readyz still {readyz(daemon)[0]} after 90 s with the disk filling "
                       f"({usage.free // 1024} KiB free, {rows()} rows); {health.summary()}")
        to_not_ready = time.monotonic() - start
        body = one_line(seen["body"], 120)
        health.wait(lambda: False, 3, 0.2)  # it stays up while the disk is full
        rows_full = rows()

        os.remove(filler)
        freed = time.monotonic()
        if not health.wait(lambda: readyz(daemon)[0] == 200, 60, 0.25):
            raise Fail(f"/readyz not 200 within 60 s after freeing space: "
                       f"{one_line(readyz(daemon)[1], 120)}; {health.summary()}")
        to_ready = time.monotonic() - freed
        if not health.wait(lambda: rows() > rows_full, 20, 0.25):
            raise Fail(f"no new rows within 20 s after freeing space ({rows_full} rows)")
        rows_after = rows()
        lost = daemon.metrics().sum("gatewatch_db_rows_lost_total")
        health.tick()
        code = daemon.stop()
        figures = (f"4 MiB tmpfs: not ready after {to_not_ready:.1f} s ({body!r}), ready "
                   f"{to_ready:.1f} s after freeing space, rows {rows_full} -> {rows_after}, "
                   f"rows lost while full {int(lost)}; {health.summary()}; SIGTERM exit {code}")
        if health.bad:
            raise Fail("/healthz failed: " + ", ".join(health.bad[:5]) + "; " + figures)
        return figures


def check_locked_db(ctx):
    with contextlib.ExitStack() as stack:
        target = ok_target(stack)
        daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir))
        db = daemon.db
        # 50 monitors: results arrive all through each second, so the writer's next commit
        # attempt comes one flush interval (1 s) after the lock, not later.
        monitors = [{"name": f"m{i}", "url": target.url(f"/m{i}")} for i in range(50)]
        daemon.start(config(db, monitors))
        health = Health(daemon)
        rows = lambda: db_int(db, "SELECT count(*) FROM results", default=0)
        if not health.wait(lambda: readyz(daemon)[0] == 200 and rows() > 0, 20, 0.2):
            raise Fail(f"not ready with rows within 20 s: {one_line(readyz(daemon)[1], 120)}")

        lock = sqlite3.connect(db, timeout=10, isolation_level=None)
        stack.callback(lock.close)
        lock.execute("BEGIN EXCLUSIVE")
        locked = time.monotonic()
        not_ready_ms, body = None, ""
        while time.monotonic() - locked < 6:  # hold the lock for 6 s, asking all along
            health.tick()
            status, text = readyz(daemon)
            if status == 503 and not_ready_ms is None:
                not_ready_ms, body = (time.monotonic() - locked) * 1000, text
            time.sleep(0.02)
        lock.execute("ROLLBACK")
        lock.close()
        released = time.monotonic()
        rows_at_release = rows()
        ready = health.wait(lambda: readyz(daemon)[0] == 200, 10, 0.05)
        ready_ms = (time.monotonic() - released) * 1000
        grew = health.wait(lambda: rows() > rows_at_release, 10, 0.2)
        code = daemon.stop()
        figures = (f"/readyz 503 {not_ready_ms:.0f} ms after BEGIN EXCLUSIVE "
                   f"({one_line(body, 100)!r}), " if not_ready_ms is not None
                   else "/readyz never 503 while locked for 6 s; ")
        figures += (f"200 again {ready_ms:.0f} ms after release; rows {rows_at_release} -> "
                    f"{rows()}; {health.summary()}; SIGTERM exit {code}")
        problems = []
        if not_ready_ms is None or not_ready_ms > 2000:
            problems.append("not 503 within 2 s")
        if not ready or ready_ms > 3000:
            problems.append("not 200 within 3 s of release")
        if not grew:
            problems.append("no new rows after release")
        if health.bad:
            problems.append("/healthz failed")
        if problems:
            raise Fail("; ".join(problems) + ": " + figures)
        return figures


def check_corrupt_db(ctx):
    with contextlib.ExitStack() as stack:
        target = ok_target(stack)
        monitors = [{"name": f"m{i}", "url": target.url(f"/m{i}")} for i in range(20)]

        # A valid database with some rows, stopped cleanly (the file alone is complete).
        maker = stack.enter_context(Daemon(ctx.binary, ctx.dir, "valid"))
        maker.start(config(maker.db, monitors))
        wait_for(lambda: db_int(maker.db, "SELECT count(*) FROM results", default=0) >= 40, 10)
        if maker.stop() != 0:
            raise Fail(f"making a valid database: SIGTERM exit {maker.proc.poll()}")
        truncated = os.path.join(ctx.dir, "truncated.db")
        shutil.copyfile(maker.db, truncated)
        size = os.path.getsize(truncated)
        os.truncate(truncated, size // 2)
        random_db = os.path.join(ctx.dir, "random.db")
        with open(random_db, "wb") as f:
            f.write(os.urandom(256 * 1024))

        parts, problems = [], []
        for label, db in (("random bytes", random_db),
                          (f"truncated to {size // 2 // 1024} of {size // 1024} KiB", truncated)):
            daemon = stack.enter_context(Daemon(ctx.binary, ctx.dir, os.path.basename(db)[:-3]))
            started = time.monotonic()
            daemon.start(config(db, monitors), wait=False)
            code = daemon.wait_exit(10)
            took = time.monotonic() - started
            errors = daemon.error_lines() or daemon.last_lines(2).splitlines()
            text = one_line(" / ".join(errors), 240)
            if code is None:
                problems.append(f"{label}: still running after 10 s")
                daemon.kill()
            elif code == 0 or code < 0 or code >= 128:
                problems.append(f"{label}: exit {code}")
            if not any("database" in e for e in errors):
                problems.append(f"{label}: no error line mentions the database")
            parts.append(f"{label}: exit {code} in {took:.1f} s: {text}")
        figures = "; ".join(parts)
        if problems:
            raise Fail("; ".join(problems) + ": " + figures)
        return figures


CHECKS = [("kill9", check_kill9), ("receiver_faults", check_receiver_faults),
          ("hostile_targets", check_hostile_targets), ("slowloris", check_slowloris),
          ("bodies", check_bodies), ("disk_full", check_disk_full),
          ("locked_db", check_locked_db), ("corrupt_db", check_corrupt_db)]


# ---------------------------------------------------------------------------------------------
# The runner


class Context:
    def __init__(self, binary, quick, directory):
        self.binary, self.quick, self.dir = binary, quick, directory


def raise_open_file_limit(want=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a test timeout) unwinds like Ctrl-C: every finally runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the gatewatch daemon binary")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and a shorter soak (about 2-3 minutes in all)")
    parser.add_argument("--only", default="", help="comma-separated checks to run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directories (path on stderr)")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"reliability: {binary} is not an executable", file=sys.stderr)
        return 2
    only = [c for c in args.only.split(",") if c]
    unknown = set(only) - {name for name, _ in CHECKS}
    if unknown:
        print(f"reliability: unknown checks {sorted(unknown)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    raise_open_file_limit()

    base = tempfile.mkdtemp(prefix="gatewatch-reliability-")
    counts = collections.Counter()
    began = time.monotonic()
    try:
        for name, check in CHECKS:
            if only and name not in only:
                continue
            directory = os.path.join(base, name)
            os.mkdir(directory)
            started = time.monotonic()
            try:
                verdict, text = "PASS", check(Context(binary, args.quick, directory))
            except Fail as e:
                verdict, text = "FAIL", str(e)
            except Skip as e:
                verdict, text = "SKIP", str(e)
            except Exception as e:  # a bug in the check itself, or an unexpected error
                traceback.print_exc(file=sys.stderr)
                verdict, text = "FAIL", f"{type(e).__name__}: {e}"
            finally:
                kill_children()
            if verdict != "SKIP":
                text += f" [{time.monotonic() - started:.0f} s]"
            counts[verdict] += 1
            print(f"{verdict} {name}: {one_line(text, 1000)}", flush=True)
    finally:
        kill_children()
        if args.keep:
            print(f"reliability: kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"reliability: {counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['SKIP']} skipped in {time.monotonic() - began:.0f} s", flush=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
