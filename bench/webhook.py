"""The Twilio inbound webhook under load: STOPs against a bare app doing one insert per POST.

Both sides are served by waitress with the same number of threads, on SQLite
files with the same settings (WAL, ``synchronous=NORMAL``, IMMEDIATE
transactions, the service's pragmas):

- **consentry**: ``consentry serve`` (with its embedded worker, then with
  ``--no-worker``) on a fresh database with one practice that has a Twilio
  auth token. Every request is a STOP from a number of its own, signed as
  Twilio signs it. Then, as production serves it, the WSGI application under
  gunicorn (``--gunicorn`` processes sharing ``--threads``) with a separate
  ``consentry worker``.
- **bare**: a Django app in this file (no middleware) whose one view inserts
  the POST's sender, body and message id into a table in one transaction.

The load comes from a separate process (this file, ``_load``) that signs
every request before the clock starts and speaks HTTP/1.1 with keep-alive
over asyncio streams. Two shapes, both bounded in count and time:

- **closed loop** (throughput): ``--concurrency`` connections each send the
  next request as soon as the last is answered, ``--n`` requests in all;
- **open loop** (latency): requests are started at a fixed ``--rate`` for
  ``--duration`` seconds whatever the answers, and each latency is counted
  from the moment its request was due (so a slow server is not hidden by a
  client that waits for it).

Checks, for consentry: the moment each load ends, every STOP answered 200 is
stored (in force for every send decision, read by a worker or not); twenty
replays answer 200 and change nothing; once a worker has read everything (the
embedded one, the separate one, or for ``--no-worker`` a ``consentry worker
--batch`` started afterwards, timed), every such STOP is an opt-out in the
ledger with exactly one confirmation, and ``consentry audit verify`` passes.

    .venv/bin/python bench/webhook.py [--n 3000] [--concurrency 16] [--rate 200] [--duration 15]
        [--gunicorn 2] [--only embedded,no-worker,gunicorn] [--repeat 3]

``--against REV`` instead runs the closed loop on the bare app, on the service as of
a git revision (a worktree) and on the working tree's, in turn, ``--repeat`` rounds
on fresh SQLite databases: what a change does, next to the run-to-run noise.

``--statements`` instead counts one STOP's SQL statements and times STOPs called
in process through the service's WSGI application and through the bare app's
(no server, no HTTP): the CPU each side adds to what the server costs both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

TOKEN = "bench-auth-token-0123456789abcdef"
TEXTING_NUMBER = "+14155550100"
PATH = "/webhooks/twilio/sms"
DURABLE_PG_PORT = "54339"  # the benchmarks' own PostgreSQL server, durable (scripts/postgres.sh)
CLI = [sys.executable, "-m", "consentry.cli"]


# --- the load generator (its own process) ------------------------------------------------------------------------


def _requests(base: str, first: int, count: int, body: str = "STOP") -> list[tuple[str, bytes]]:
    """``count`` signed STOPs from numbers ``first``..: (sender, the raw HTTP request)."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    url = base + PATH
    host = urllib.parse.urlsplit(base).netloc
    out = []
    for i in range(first, first + count):
        sender = f"+1212{i:07d}"
        form = {"From": sender, "To": TEXTING_NUMBER, "Body": body, "MessageSid": f"SM{i:032d}", "AccountSid": "AC1"}
        data = urllib.parse.urlencode(form).encode()
        signature = validator.compute_signature(url, form)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(data)}\r\nX-Twilio-Signature: {signature}\r\n\r\n"
        )
        out.append((sender, head.encode() + data))
    return out


class _Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> int:
        """The status of one request (0 when the connection failed)."""
        for _ in range(2):  # once more on a connection the server closed
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                assert self.reader is not None
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                headers = head.lower()
                if b"transfer-encoding: chunked" in headers:
                    while True:
                        size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                        await self.reader.readexactly(size + 2)
                        if size == 0:
                            break
                else:
                    at = headers.find(b"content-length:")
                    length = int(headers[at + 15 : headers.index(b"\r\n", at)]) if at >= 0 else 0
                    await self.reader.readexactly(length)
                if b"connection: close" in headers:
                    self.close()
                return status
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.close()
        return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _closed(host, port, requests, concurrency, limit_s):
    queue = list(reversed(requests))
    results: list[tuple[str, int, float]] = []
    deadline = time.perf_counter() + limit_s

    async def client():
        connection = _Connection(host, port)
        while queue and time.perf_counter() < deadline:
            sender, raw = queue.pop()
            started = time.perf_counter()
            status = await connection.send(raw)
            results.append((sender, status, time.perf_counter() - started))
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results, time.perf_counter() - started


async def _open(host, port, requests, rate, limit_s, max_connections=64):
    free: list[_Connection] = []
    opened = 0
    waiting: asyncio.Queue[_Connection] = asyncio.Queue()
    results: list[tuple[str, int, float]] = []

    async def one(sender, raw, due):
        nonlocal opened
        if free:
            connection = free.pop()
        elif opened < max_connections:
            opened += 1
            connection = _Connection(host, port)
        else:
            connection = await waiting.get()
        status = await connection.send(raw)
        results.append((sender, status, time.perf_counter() - due))
        if waiting._getters:  # someone waits for a connection: hand it over
            waiting.put_nowait(connection)
        else:
            free.append(connection)

    tasks = []
    start = time.perf_counter()
    for i, (sender, raw) in enumerate(requests):
        due = start + i / rate
        if due - start > limit_s:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(sender, raw, due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=limit_s + 60)
    elapsed = time.perf_counter() - start
    for connection in free:
        connection.close()
    return results, elapsed


def load_main(argv: list[str]) -> None:
    """``_load BASE FIRST COUNT MODE ARG LIMIT_S [BODY]``: prints one JSON line of results."""
    base, first, count, mode, arg, limit_s = argv[:6]
    body = argv[6] if len(argv) > 6 else "STOP"
    requests = _requests(base, int(first), int(count), body)
    parts = urllib.parse.urlsplit(base)
    if mode == "closed":
        results, elapsed = asyncio.run(_closed(parts.hostname, parts.port, requests, int(arg), float(limit_s)))
    else:
        results, elapsed = asyncio.run(_open(parts.hostname, parts.port, requests, float(arg), float(limit_s)))
    print(json.dumps({"elapsed": elapsed, "results": results}))


def run_load(base: str, first: int, count: int, mode: str, arg: float, limit_s: float, body: str = "STOP") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "_load", base, str(first), str(count), mode, str(arg), str(limit_s), body],
        capture_output=True,
        text=True,
        timeout=limit_s + 120,
        check=True,
    )
    return json.loads(out.stdout)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of a process and of every process under it, from /proc."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    tree, total = {pid}, 0.0
    for _ in range(3):  # the server, its children, theirs
        tree |= {child for child, (parent, _) in stats.items() if parent in tree}
    for member in tree:
        total += stats.get(member, (0, 0.0))[1]
    return total


def measured(process: subprocess.Popen, *load_args) -> dict:
    """``run_load`` with the server's CPU seconds over it (``cpu``)."""
    before = cpu_seconds(process.pid)
    load = run_load(*load_args)
    return {**load, "cpu": cpu_seconds(process.pid) - before}


def summary(load: dict) -> dict:
    results = load["results"]
    ok = [r for r in results if r[1] == 200]
    latencies = sorted(r[2] * 1000 for r in ok) or [0.0]

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "sent": len(results),
        "ok": len(ok),
        "errors": {str(s): sum(1 for r in results if r[1] == s) for s in {r[1] for r in results if r[1] != 200}},
        "rate": len(ok) / load["elapsed"] if load["elapsed"] else 0.0,
        "p50": statistics.median(latencies),
        "p99": pct(99),
        "max": latencies[-1],
        "cpu_ms": 1000 * load["cpu"] / len(ok) if ok and "cpu" in load else None,
    }


# --- the bare app (its own process) ---------------------------------------------------------------------------------


def bare_main(argv: list[str]) -> None:
    """``_bare PORT DATABASE_URL DATA_DIR THREADS``: a Django app with one view that inserts the POST, served by
    waitress."""
    port, url, data, threads = int(argv[0]), argv[1], argv[2], int(argv[3])
    from waitress import serve

    serve(_bare_application(url, data), host="127.0.0.1", port=port, threads=threads, ident="bare")


def _bare_application(url: str, data: str):
    """The bare app's WSGI application, on its own database (the service's settings for it)."""
    os.environ.update(DATABASE_URL=url, CONSENTRY_DEMO="1", CONSENTRY_DATA_DIR=data)
    import django
    from django.conf import settings

    from consentry import settings as service  # the same database options as the service

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-bare-app",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
        DATABASES={"default": {**service.DATABASES["default"]}},
    )
    django.setup()
    from django.db import connection

    key = "BIGSERIAL PRIMARY KEY" if connection.vendor == "postgresql" else "INTEGER PRIMARY KEY"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS inbound (id {key}, sid TEXT UNIQUE, from_number TEXT,"
            " body TEXT, received_at TEXT)"
        )
    connection.close()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _bare_view(request):
    from datetime import UTC, datetime

    from django.db import connection, transaction
    from django.http import HttpResponse

    if request.method != "POST":
        return HttpResponse("ok", content_type="text/plain")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO inbound (sid, from_number, body, received_at) VALUES (%s, %s, %s, %s)",
            [
                request.POST.get("MessageSid"),
                request.POST.get("From"),
                request.POST.get("Body"),
                str(datetime.now(UTC)),
            ],
        )
    return HttpResponse('<?xml version="1.0" encoding="UTF-8"?><Response />', content_type="text/xml")


def _urlpatterns():
    from django.urls import path

    return [path("webhooks/twilio/sms", _bare_view), path("healthz", _bare_view)]


def __getattr__(name):  # ROOT_URLCONF reads urlpatterns from this module
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


# --- servers ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server at {base} did not start") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def service_env(data: Path, url: str, source: Path | None = None) -> dict:
    """The service's environment; with ``source``, the service's code from that tree (``src`` of a checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(CONSENTRY_DEMO="1", CONSENTRY_DATA_DIR=str(data), DATABASE_URL=url, CONSENTRY_LOG_LEVEL="WARNING")
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def prepare_service(data: Path, url: str, source: Path | None = None) -> tuple[dict, str]:
    env = service_env(data, url, source)
    subprocess.run([*CLI, "migrate", "--noinput", "-v0"], env=env, check=True)
    created = subprocess.run(
        [
            *CLI,
            "practice",
            "create",
            "--name",
            "Oak Clinic",
            "--texting-number",
            TEXTING_NUMBER,
            "--twilio-auth-token",
            TOKEN,
            "--send-window",
            "00:00-00:00",
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return env, json.loads(created.stdout)["id"]


def start_service(env: dict, threads: int, worker: bool) -> tuple[str, subprocess.Popen]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [*CLI, "serve", "--port", str(port), "--threads", str(threads)] + ([] if worker else ["--no-worker"])
    # waitress logs its queue depth whenever every thread is busy: that is the point of the run, so to a file.
    log = open(Path(env["CONSENTRY_DATA_DIR"]) / "serve.log", "a")  # noqa: SIM115 (the server's, for its life)
    process = subprocess.Popen(args, env={**env, "CONSENTRY_PUBLIC_URL": base}, stdout=subprocess.DEVNULL, stderr=log)
    wait_up(base, process)
    return base, process


def start_gunicorn(env: dict, processes: int, threads: int) -> tuple[str, subprocess.Popen]:
    """The WSGI application under gunicorn: ``processes`` workers of ``threads`` threads each (gthread)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    args = [gunicorn, "-w", str(processes), "--threads", str(threads), "-b", f"127.0.0.1:{port}"]
    log = open(Path(env["CONSENTRY_DATA_DIR"]) / "gunicorn.log", "a")  # noqa: SIM115 (the server's, for its life)
    process = subprocess.Popen(
        [*args, "--log-level", "warning", "consentry.wsgi:application"],
        env={**env, "CONSENTRY_PUBLIC_URL": base},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    wait_up(base, process)
    return base, process


def start_worker(env: dict) -> subprocess.Popen:
    """``consentry worker``, as production runs it beside the web processes."""
    log = open(Path(env["CONSENTRY_DATA_DIR"]) / "worker.log", "a")  # noqa: SIM115 (the worker's, for its life)
    return subprocess.Popen([*CLI, "worker", "--interval", "0.1"], env=env, stdout=subprocess.DEVNULL, stderr=log)


def start_bare(data: Path, url: str, threads: int) -> tuple[str, subprocess.Popen]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, __file__, "_bare", str(port), url, str(data), str(threads)],
        stdout=subprocess.DEVNULL,
        stderr=open(data / "bare.log", "a"),  # noqa: SIM115 (the server's, for its life)
    )
    wait_up(base, process)
    return base, process


# --- checks ----------------------------------------------------------------------------------------------------------


def _rows(url: str, sql: str, params: list) -> list[tuple]:
    """A query on the service's database, SQLite or PostgreSQL, through the driver alone (``%s`` placeholders)."""
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            return con.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            con.close()
    import psycopg

    with psycopg.connect(url) as con:
        return con.execute(sql, params).fetchall()


def _pid(url: str, practice_id: str) -> str:
    return practice_id.replace("-", "") if url.startswith("sqlite") else practice_id  # how each stores a UUID


def stored_stops(url: str, practice_id: str, answered: list[str]) -> int:
    """How many of the numbers answered 200 have no STOP stored: it must be none, the moment the load ends."""
    sql = "SELECT from_number FROM keywords_inboundmessage WHERE practice_id = %s AND asks_to_stop"
    stored = {n for (n,) in _rows(url, sql, [_pid(url, practice_id)])}
    return sum(1 for a in answered if a not in stored)


def unread(url: str) -> int:
    return _rows(url, "SELECT count(*) FROM keywords_inboundmessage WHERE processed_at IS NULL", [])[0][0]


def wait_read(url: str, limit_s: float) -> float | None:
    """Seconds until the worker has read every stored text (None: not within ``limit_s``)."""
    started = time.perf_counter()
    while unread(url):
        if time.perf_counter() - started > limit_s:
            return None
        time.sleep(0.05)
    return time.perf_counter() - started


def check_ledger(url: str, practice_id: str, answered: list[str]) -> dict:
    """Every number answered 200 is opted out in the ledger, with exactly one confirmation queued."""
    pid = _pid(url, practice_id)
    sql = "SELECT address FROM consent_consentevent WHERE practice_id = %s AND subject = 'sms' AND state = 'opted_out'"
    opted = {a for (a,) in _rows(url, sql, [pid])}
    confirmations: dict[str, int] = {}
    sql = (
        "SELECT d.address FROM messaging_delivery d JOIN messaging_message m ON m.id = d.message_id "
        "WHERE d.practice_id = %s AND m.kind = 'keyword_reply'"
    )
    for (address,) in _rows(url, sql, [pid]):
        confirmations[address] = confirmations.get(address, 0) + 1
    return {
        "answered": len(answered),
        "missing_from_ledger": sum(1 for a in answered if a not in opted),
        "not_one_confirmation": sum(1 for a in answered if confirmations.get(a, 0) != 1),
    }


def audit_ok(env: dict, practice_id: str) -> bool:
    out = subprocess.run(
        [*CLI, "audit", "verify", "--practice", practice_id, "--json"], env=env, capture_output=True, text=True
    )
    report = json.loads(out.stdout)[0]
    return bool(report["ok"] and report["projection_matches"])


# --- in-process: statements and the view's own cost ------------------------------------------------------------------


IN_PROCESS_HOST = "127.0.0.1:8000"


def _environ(i: int, body: str = "STOP") -> dict:
    """A signed STOP from number ``i`` as a WSGI server hands it to the application (form-encoded, as Twilio
    sends it)."""
    import io

    from twilio.request_validator import RequestValidator

    form = {
        "From": f"+1212{i:07d}",
        "To": TEXTING_NUMBER,
        "Body": body,
        "MessageSid": f"SM{i:032d}",
        "AccountSid": "AC1",
    }
    data = urllib.parse.urlencode(form).encode()
    signature = RequestValidator(TOKEN).compute_signature(f"http://{IN_PROCESS_HOST}{PATH}", form)
    host, port = IN_PROCESS_HOST.split(":")
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": PATH,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": host,
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": IN_PROCESS_HOST,
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_X_TWILIO_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(data),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }


def _time_in_process(application, first: int, n: int, repeat: int = 3) -> float:
    """The least CPU time per request, ms, of ``repeat`` runs of ``n`` STOPs through a WSGI application."""
    statuses = set()

    def start_response(status, headers, exc_info=None):
        statuses.add(status)

    best = float("inf")
    for run in range(repeat):
        environs = [_environ(i) for i in range(first + run * n, first + (run + 1) * n)]
        cpu = time.process_time()
        for environ in environs:
            response = application(environ, start_response)
            b"".join(response)
            response.close()
        best = min(best, (time.process_time() - cpu) / n * 1000)
    if statuses != {"200 OK"}:
        raise SystemExit(f"in-process STOPs answered {statuses}")
    return best


def bare_in_process_main(argv: list[str]) -> None:
    """``_bare_in_process N``: the bare app's CPU per STOP, called in process through its WSGI handler."""
    data = tempfile.mkdtemp(prefix="consentry-webhook-bare-")
    application = _bare_application(f"sqlite:///{data}/bare.sqlite3", data)
    _time_in_process(application, 0, 200, repeat=1)  # warm up
    print(f"{_time_in_process(application, 1_000_000, int(argv[0])):.4f}")


def statements_main(n: int, profile: str = "") -> None:
    """One STOP's SQL statements, and the CPU per STOP of the service's WSGI application and of the bare app,
    each called in process (no HTTP, no server): the Python each side adds to what the server costs both."""
    from _setup import django_on_temp_sqlite

    django_on_temp_sqlite("consentry-webhook-")
    from collections import Counter

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from consentry.keywords.model import model
    from consentry.patients.practices import create_practice
    from consentry.wsgi import application

    model()  # the start-up's training ends before the clock starts
    settings.CONSENTRY_PUBLIC_URL = f"http://{IN_PROCESS_HOST}"  # as `serve` sets it for the demo
    create_practice(name="Oak Clinic", texting_number=TEXTING_NUMBER, twilio_auth_token=TOKEN)
    _time_in_process(application, 0, 200, repeat=1)  # warm up
    with CaptureQueriesContext(connection) as captured:
        _time_in_process(application, 500_000, 1, repeat=1)
    print(f"one STOP: {len(captured.captured_queries)} SQL statements")
    kinds = Counter()
    for q in captured.captured_queries:
        sql = q["sql"]
        words = sql.split()
        verb = words[0].upper()
        table = next((w.strip('"') for w in words if w.startswith('"') and "_" in w), "")
        kinds[(verb, table if verb not in ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT") else "")] += 1
    for (verb, table), count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {count:3d}  {verb} {table}")
    ours = _time_in_process(application, 1_000_000, n)
    bare_run = subprocess.run(
        [sys.executable, __file__, "_bare_in_process", str(n)], capture_output=True, text=True, check=True
    )
    bare = float(bare_run.stdout.strip().splitlines()[-1])
    print(
        f"in process, CPU per STOP (best of 3 runs of {n}, through each WSGI application): "
        f"consentry {ours:.3f} ms, bare app {bare:.3f} ms (ratio bare/consentry {bare / ours:.2f}); "
        f"over HTTP the server adds the same to both. Load average {os.getloadavg()[0]:.1f}."
    )
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        _time_in_process(application, 5_000_000, n, repeat=1)
        profiler.disable()
        profiler.dump_stats(profile)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


# --- the comparison --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="requests of each closed-loop run (default 3,000)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections (default 16)")
    parser.add_argument("--rate", type=float, default=200, help="open-loop requests per second (default 200)")
    parser.add_argument("--duration", type=float, default=15, help="open-loop seconds (default 15)")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads on both sides (default 8)")
    parser.add_argument(
        "--gunicorn", type=int, default=2, help="gunicorn processes, sharing --threads (default 2; 0 leaves it out)"
    )
    parser.add_argument("--limit", type=float, default=120, help="longest any run may take, seconds")
    parser.add_argument("--settle", type=float, default=4, help="seconds after start-up before the load (default 4)")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (its own durable server)")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each on fresh databases (min and median)")
    parser.add_argument("--only", default="", help="some of: embedded,no-worker,gunicorn (default all)")
    parser.add_argument("--statements", action="store_true", help="count one STOP's statements in process")
    parser.add_argument("--profile", metavar="FILE", help="with --statements: cProfile STOPs, stats to FILE")
    parser.add_argument(
        "--against",
        metavar="REV",
        help="instead: this git revision of the service against the working tree, side by side (SQLite, --no-worker)",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.statements:
        statements_main(3000, args.profile or "")
        return 0
    if args.against:
        return against_main(args)

    data = Path(tempfile.mkdtemp(prefix="consentry-webhook-"))
    failures = 0
    tables = []
    ratios: dict[tuple[str, str], list[float]] = {}
    for run in range(args.repeat):
        # Each run on fresh databases: the bare app first, then each side of the service, one after the other.
        (data / f"run{run}").mkdir()
        databases = [
            ("SQLite", *(f"sqlite:///{data / f'run{run}' / n}" for n in ("bare.sqlite3", "consentry.sqlite3")))
        ]
        if args.postgres:
            databases.append(("PostgreSQL", *postgres_databases()))
        for label, bare_url, url in databases:
            print(f"run {run + 1} of {args.repeat}, load average {os.getloadavg()[0]:.1f}", flush=True)
            rows, failed = compare(args, data / f"run{run}", label, bare_url, url)
            failures += failed
            tables.append((label, rows))
            bare_rate = rows[0][1]["rate"]
            for name, closed, _, _ in rows[1:]:
                ratios.setdefault((label, name), []).append(closed["rate"] / bare_rate if bare_rate else 0)
    for label, rows in tables:
        print(
            f"\nSTOP webhook on {label}, {args.threads} threads in all; closed loop {args.n} requests over "
            f"{args.concurrency} connections; open loop {args.rate:g}/s for {args.duration:g} s\n"
        )
        print(
            f"| server | closed: req/s | ratio to bare | server CPU ms/req | p50 / p99 ms | open: p50 / p99 ms at {args.rate:g}/s | errors |"
        )
        print("|---|---|---|---|---|---|---|")
        bare_rate = rows[0][1]["rate"]
        for name, closed, opened, _ in rows:
            ratio = closed["rate"] / bare_rate if bare_rate else 0
            errors = {**closed["errors"], **opened["errors"]}
            print(
                f"| {name} | {closed['rate']:,.0f} | {ratio:.3f} | {closed['cpu_ms']:.2f} | {closed['p50']:.1f} / {closed['p99']:.1f} | "
                f"{opened['p50']:.1f} / {opened['p99']:.1f} (sent {opened['sent']}) | {errors or 0} |"
            )
        print()
        for name, _, _, check in rows:
            if check:
                print(f"{name}: {check}")
    if args.repeat > 1:
        print(f"\nratio to bare over {args.repeat} runs (target 0.70): min / median")
        for (label, name), values in ratios.items():
            print(f"  {label}, {name}: {min(values):.3f} / {statistics.median(values):.3f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}; checks {'FAILED' if failures else 'ok'}")
    if not args.keep:
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    else:
        print(f"kept {data}")
    return 1 if failures else 0


def against_main(args) -> int:
    """``--against REV``: the closed loop on the bare app, the service as of REV (a git worktree) and the working
    tree's, in turn, ``--repeat`` rounds, each on fresh SQLite databases: a change's effect next to the noise."""
    data = Path(tempfile.mkdtemp(prefix="consentry-webhook-against-"))
    checkout = data / "checkout"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), args.against], check=True)
    sides = {"bare": None, args.against: checkout / "src", "working tree": ROOT / "src"}
    results: dict[str, list[dict]] = {name: [] for name in sides}
    try:
        for run in range(args.repeat):
            print(f"round {run + 1} of {args.repeat}, load average {os.getloadavg()[0]:.1f}", flush=True)
            for side, (name, source) in enumerate(sides.items()):
                here = data / f"round{run}-side{side}"
                here.mkdir()
                url = f"sqlite:///{here / 'db.sqlite3'}"
                if source is None:
                    base, server = start_bare(here, url, args.threads)
                else:
                    env, _ = prepare_service(here, url, source)
                    base, server = start_service(env, args.threads, worker=False)
                    time.sleep(args.settle)
                try:
                    run_load(base, 0, 200, "closed", args.concurrency, args.limit)  # warm up
                    closed = summary(measured(server, base, 1_000_000, args.n, "closed", args.concurrency, args.limit))
                finally:
                    stop(server)
                results[name].append(closed)
                print(f"  {name}: {closed['rate']:,.0f} req/s, {closed['cpu_ms']:.2f} ms of CPU a request", flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=False)
        if not args.keep:
            import shutil

            shutil.rmtree(data, ignore_errors=True)
    print(f"\nratio to bare, min / median over {args.repeat} rounds; CPU a request, median")
    for name in list(sides)[1:]:
        ratios = [ours["rate"] / bare["rate"] for ours, bare in zip(results[name], results["bare"], strict=True)]
        cpu = statistics.median(r["cpu_ms"] for r in results[name])
        print(f"  {name}: {min(ratios):.3f} / {statistics.median(ratios):.3f}; {cpu:.2f} ms")
    print(f"  bare: {statistics.median(r['cpu_ms'] for r in results['bare']):.2f} ms")
    return 0


def postgres_databases() -> tuple[str, str]:
    """Two fresh databases on a PostgreSQL server of the benchmark's own, with its durable defaults."""
    import uuid

    import psycopg

    durable = {**os.environ, "CONSENTRY_PG_DURABLE": "1", "CONSENTRY_PG_PORT": DURABLE_PG_PORT}
    started = subprocess.run([str(ROOT / "scripts" / "postgres.sh")], capture_output=True, text=True, env=durable)
    if started.returncode != 0:
        raise SystemExit(f"PostgreSQL unavailable: {started.stderr.strip()}")
    server = started.stdout.strip().rsplit("/", 1)[0]
    names = [f"consentry_webhook_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{names[0]}", f"{server}/{names[1]}"


def compare(args, data: Path, label: str, bare_url: str, url: str) -> tuple[list, int]:
    """The bare app and each side on one database: the table's rows, and how many checks failed."""
    rows: list = []
    base, bare = start_bare(data, bare_url, args.threads)
    try:
        run_load(base, 0, 200, "closed", args.concurrency, args.limit)  # warm up
        bare_closed = summary(measured(bare, base, 1_000_000, args.n, "closed", args.concurrency, args.limit))
        bare_open = summary(run_load(base, 2_000_000, int(args.rate * args.duration), "open", args.rate, args.limit))
    finally:
        stop(bare)
    rows.append(("bare (one insert)", bare_closed, bare_open, None))
    print(f"{label}: bare {bare_closed['rate']:,.0f} req/s", flush=True)

    (data / label).mkdir(exist_ok=True)
    env, practice_id = prepare_service(data / label, url)
    failures = 0
    first = 3_000_000
    sides = [("serve", True), ("serve", False)] + [("gunicorn", True)] * (args.gunicorn > 0)
    if args.only:
        wanted = set(args.only.split(","))
        names = {("serve", True): "embedded", ("serve", False): "no-worker", ("gunicorn", True): "gunicorn"}
        sides = [side for side in sides if names[side] in wanted]
    for kind, worker in sides:
        if kind == "serve":
            name = f"consentry serve ({'embedded worker' if worker else '--no-worker'})"
            base, server = start_service(env, args.threads, worker)
            beside = None
        else:
            name = f"gunicorn -w {args.gunicorn} --threads {args.threads // args.gunicorn} + consentry worker"
            base, server = start_gunicorn(env, args.gunicorn, max(1, args.threads // args.gunicorn))
            beside = start_worker(env)
        try:
            # Start-up work ends first: the opt-out model trains in the background for about two seconds.
            time.sleep(args.settle)
            run_load(base, first, 200, "closed", args.concurrency, args.limit)  # warm up
            closed = measured(server, base, first + 200, args.n, "closed", args.concurrency, args.limit)
            # The moment the load ends: every STOP answered 200 is stored (in force), read or not.
            not_stored = stored_stops(url, practice_id, [r[0] for r in closed["results"] if r[1] == 200])
            opened = run_load(base, first + 200 + args.n, int(args.rate * args.duration), "open", args.rate, args.limit)
            not_stored += stored_stops(url, practice_id, [r[0] for r in opened["results"] if r[1] == 200])
            answered = [r[0] for r in closed["results"] + opened["results"] if r[1] == 200]
            # Replays of twenty STOPs already answered: 200 again, and nothing more is recorded or sent.
            replays = summary(run_load(base, first + 200, 20, "closed", 4, args.limit))
            left = unread(url)
            if worker:
                read_in = wait_read(url, args.limit * 5)
        finally:
            stop(server)
            if beside is not None:
                stop(beside)
        if not worker:  # a worker started now reads what the web process stored
            started = time.perf_counter()
            with open(data / label / "worker.log", "a") as log:
                subprocess.run([*CLI, "worker", "--batch", "--no-startup-delay"], env=env, check=True, stderr=log)
            read_in = time.perf_counter() - started
        check = check_ledger(url, practice_id, answered)
        check.update(not_stored_at_200=not_stored, replays_ok=replays["ok"] == 20, unread_after_load=left)
        check["read_all_in_s"] = None if read_in is None else round(read_in, 1)
        rows.append((name, summary(closed), summary(opened), check))
        failures += check["missing_from_ledger"] + check["not_one_confirmation"] + (not check["replays_ok"])
        failures += not_stored + (read_in is None)
        first += 1_000_000
    audit = audit_ok(env, practice_id)
    print(f"{label}: audit verify {'ok' if audit else 'FAILED'}", flush=True)
    return rows, failures + (not audit)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        load_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_bare":
        bare_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_bare_in_process":
        bare_in_process_main(sys.argv[2:])
    else:
        sys.exit(main())
