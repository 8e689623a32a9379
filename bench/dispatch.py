"""Benchmark draining queued deliveries with real worker processes against a bare update loop.

For each database (a fresh SQLite file under ``var/bench/``; with ``--postgres``, or
when ``DATABASE_URL`` points at PostgreSQL, also a fresh PostgreSQL database) this:

1. creates one practice (sandbox provider, no quiet hours) and ``--n`` patients
   (default 5,000), each with a valid mobile number of their own;
2. plans one broadcast to all of them with ``create_message`` (SMS only), the
   production path: ``--n`` pending deliveries and their dispatch tasks, queued in
   django-tasks-db in the planning transaction (``CONSENTRY_DISPATCH_BATCH``
   deliveries per task);
3. drains the queue with 1, then 2, ``consentry worker --batch`` processes
   started together, timing from their start until no delivery is ``pending``;
4. baseline on the same rows: 1, then 2, plain processes that, for each delivery
   id (the ids split into contiguous halves), run one transaction setting
   ``status='delivered'`` and ``provider_ref``, the least a dispatcher must write.

Before every run the rows go back to ``pending``, their history, sandbox outbox and
task rows are deleted, and the tasks are enqueued again with ``enqueue_dispatch``
(SQLite: WAL checkpointed; PostgreSQL: VACUUM), so every run starts from the same
state. Both sides include their processes' start-up (Django set-up), printed
separately; then both run again with the processes already running when the work
appears (the rate a running service drains at). The target: our rate at least 0.6 of
the baseline's, with the processes already running.

    .venv/bin/python bench/dispatch.py [--n 5000] [--postgres] [--repeat 1] [--batch 500]
                                       [--profile FILE] [--keep]

``--profile FILE`` then drains once more in this process with the worker's own
claim-and-run loop under cProfile (stats saved to FILE.<database>) and once under
query capture, and prints where the time per delivery goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET = 0.6  # our rate / baseline rate, at least (issue 15, item 3)
DURABLE_PG_PORT = "54339"  # the benchmark's own PostgreSQL server, durable (scripts/postgres.sh)
POLL_SECONDS = 0.05
SMS = "Hi {{first_name}}, it's time for your check-up. Reply to book, STOP to opt out."
WORKER = [
    sys.executable,
    "-m",
    "consentry.cli",
    "worker",
    "--batch",
    "--interval",
    "0",
    "--no-startup-delay",
    "--no-reload",
    "-v",
    "0",
]
# Long-running workers, polling every 10 ms, told to stop once the deliveries are out.
RUNNING_WORKER = [
    sys.executable,
    "-m",
    "consentry.cli",
    "worker",
    "--interval",
    "0.01",
    "--no-startup-delay",
    "--no-reload",
]


# --- orchestration (no Django in this process) -------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="pending deliveries (default 5,000)")
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="also run on a fresh PostgreSQL database (scripts/postgres.sh's server, "
        "or the server of DATABASE_URL when it is a PostgreSQL URL)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each kind, best kept (default 1)")
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help="deliveries per dispatch task (CONSENTRY_DISPATCH_BATCH; default: the setting's)",
    )
    ap.add_argument("--profile", metavar="FILE", help="also profile one in-process drain (see above)")
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    # Internal: one database's whole run, and a baseline process.
    ap.add_argument("--_run", dest="run", metavar="REPORT", help=argparse.SUPPRESS)
    ap.add_argument("--_baseline", dest="baseline", metavar="SHARD/SHARDS", help=argparse.SUPPRESS)
    ap.add_argument("--_message", dest="message", help=argparse.SUPPRESS)
    ap.add_argument("--_go", dest="go", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n < 1 or args.repeat < 1 or (args.batch is not None and args.batch < 1):
        ap.error("--n, --repeat and --batch must be at least 1")

    if args.baseline:
        baseline_process(args)
        return
    if args.run:
        run_database(args)
        return

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    data_dir = ROOT / "var" / "bench" / f"dispatch-{stamp}-{os.getpid()}"
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(
        CONSENTRY_DEMO="1",
        CONSENTRY_DATA_DIR=str(data_dir),
        CONSENTRY_LOG_LEVEL="WARNING",
        CONSENTRY_PROVIDER="sandbox",
        DJANGO_SETTINGS_MODULE="consentry.settings",
    )
    if args.batch is not None:
        env["CONSENTRY_DISPATCH_BATCH"] = str(args.batch)

    targets = [("SQLite", f"sqlite:///{data_dir / 'bench.sqlite3'}", None)]
    base_url = os.environ.get("DATABASE_URL", "")
    if args.postgres or base_url.startswith("postgres"):
        if not base_url.startswith("postgres"):
            # A server of its own, with PostgreSQL's durable defaults (the test server runs with fsync off).
            durable = {**os.environ, "CONSENTRY_PG_DURABLE": "1", "CONSENTRY_PG_PORT": DURABLE_PG_PORT}
            started = subprocess.run(
                [str(ROOT / "scripts" / "postgres.sh")], capture_output=True, text=True, env=durable
            )
            base_url = started.stdout.strip() if started.returncode == 0 else ""
            if not base_url:
                print(f"!! PostgreSQL unavailable, SQLite only: {started.stderr.strip()}", file=sys.stderr)
        if base_url:
            targets.append(("PostgreSQL", *_create_pg_database(base_url)))

    summaries = []
    try:
        for label, url, _admin in targets:
            report = data_dir / f"report-{label}.json"
            cmd = [sys.executable, __file__, "--_run", str(report), "--n", str(args.n), "--repeat", str(args.repeat)]
            if args.profile:
                cmd += ["--profile", f"{args.profile}.{label.lower()}"]
            print(f"\n===== {label} =====", flush=True)
            subprocess.run(cmd, env={**env, "DATABASE_URL": url}, check=True)
            summaries.append((label, json.loads(report.read_text())))
    finally:
        for _label, url, admin in targets:
            if admin and not args.keep:
                _drop_pg_database(admin, url.rsplit("/", 1)[1])
        if args.keep:
            print(f"\ndatabases kept: {data_dir}" + "".join(f", {url}" for _, url, admin in targets if admin))
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    load = os.getloadavg()
    print(
        f"\n===== summary: {args.n:,} deliveries, deliveries/s, best of {args.repeat} "
        f"(load average now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}) ====="
    )
    print(f"{'':<22}{'with start-up':^30}{'processes already running':^42}")
    print(
        f"{'database':<12}{'processes':>10}{'dispatch':>10}{'baseline':>10}{'ratio':>8}"
        f"{'dispatch':>12}{'baseline':>10}{'ratio':>8}  target {TARGET:.0%} of baseline"
    )
    for label, s in summaries:
        for row in s["rows"]:
            ratio = row["ours"] / row["baseline"]
            net = row["net_ours"] / row["net_baseline"]
            print(
                f"{label:<12}{row['procs']:>10}{row['ours']:>10,.0f}{row['baseline']:>10,.0f}{ratio:>8.2f}"
                f"{row['net_ours']:>12,.0f}{row['net_baseline']:>10,.0f}{net:>8.2f}  "
                f"{'met' if net >= TARGET else 'MISSED'}"
            )
    if args.repeat > 1:
        print(f"\n{'ratio of each repetition':<22}{'with start-up':^22}{'processes already running':^30}")
        print(f"{'database':<12}{'processes':>10}{'min':>11}{'median':>11}{'min':>15}{'median':>15}")
        for label, s in summaries:
            for row in s["rows"]:
                r, net = row["ratios"], row["net_ratios"]
                print(
                    f"{label:<12}{row['procs']:>10}{min(r):>11.2f}{statistics.median(r):>11.2f}"
                    f"{min(net):>15.2f}{statistics.median(net):>15.2f}"
                )


def _create_pg_database(base_url: str) -> tuple[str, str]:
    import psycopg

    server = base_url.rsplit("/", 1)[0]
    admin = f"{server}/postgres"
    name = f"consentry_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}", admin


def _drop_pg_database(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- one database -------------------------------------------------------------


def _django():
    import django

    django.setup()


def run_database(args) -> None:
    _django()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Max
    from django_tasks_db.models import DBTaskResult

    from consentry.messaging.models import Delivery, DeliveryEvent
    from consentry.messaging.planning import create_message
    from consentry.messaging.tasks import enqueue_dispatch
    from consentry.patients.models import ContactKind, ContactPoint, Patient, PatientContact
    from consentry.patients.practices import create_practice
    from consentry.providers.models import SandboxMessage

    call_command("migrate", verbosity=0, interactive=False)
    vendor = connection.vendor
    if vendor == "sqlite":
        where = f"SQLite {connection.Database.sqlite_version}, {settings.DATABASES['default']['NAME']}"
    else:
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute("SHOW fsync")
            fsync = cur.fetchone()[0]
            cur.execute("SHOW synchronous_commit")
            sync = cur.fetchone()[0]
        where = (
            f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync}), {settings.DATABASES['default']['NAME']}"
        )
    print(f"dispatch benchmark, Python {sys.version.split()[0]}, {where}", flush=True)

    # --- 1-2. the practice, its patients and one planned broadcast --------------
    t0 = time.perf_counter()
    practice, _key = create_practice(
        name="Bench Dental", texting_number="+12025550100", send_window=(clock_time(0, 0), clock_time(0, 0))
    )
    with transaction.atomic():
        points = ContactPoint.objects.bulk_create(
            [
                ContactPoint(
                    practice=practice,
                    address=f"+1202{5550200 + i:07d}",
                    kind=ContactKind.PHONE,
                    line_type="mobile",
                    valid=True,
                )
                for i in range(args.n)
            ],
            batch_size=2000,
        )
        if points[0].pk is None:  # SQLite before 3.35 returns no ids from bulk_create
            points = list(ContactPoint.objects.filter(practice=practice).order_by("address"))
        patients = Patient.objects.bulk_create(
            [
                Patient(id=uuid.uuid4(), practice=practice, first_name=f"Patient{i}", last_name="Bench")
                for i in range(args.n)
            ],
            batch_size=2000,
        )
        PatientContact.objects.bulk_create(
            [PatientContact(patient=p, contact_point=c, position=0) for p, c in zip(patients, points, strict=True)],
            batch_size=2000,
        )
    planned = create_message(
        practice=practice,
        kind="broadcast",
        category="recall",
        patient_ids=[str(p.pk) for p in patients],
        content={"sms": SMS},
    )
    message_id = planned.message.pk
    deliveries = Delivery.objects.filter(message_id=message_id)
    ids = list(deliveries.order_by("pk").values_list("pk", flat=True))
    pending = deliveries.filter(status="pending").count()
    n_tasks = DBTaskResult.objects.ready().count()
    if pending != args.n or len(ids) != args.n:
        raise SystemExit(f"expected {args.n:,} pending deliveries, planned {len(ids):,} ({pending:,} pending)")
    print(
        f"planned {args.n:,} pending SMS deliveries in {n_tasks} dispatch tasks "
        f"({settings.CONSENTRY_DISPATCH_BATCH} per task) in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    del patients, points, planned

    env = dict(os.environ)
    data_dir_of_run = Path(args.run).parent

    def reset(*, enqueue: bool) -> None:
        """Every delivery pending again, no history, no outbox, no tasks (or fresh ones)."""
        now = datetime.now(UTC)
        with transaction.atomic():
            DeliveryEvent.objects.filter(delivery__message_id=message_id).delete()
            SandboxMessage.objects.all().delete()
            DBTaskResult.objects.all().delete()
            deliveries.update(
                status="pending",
                reason="",
                provider_ref="",
                error="",
                attempted_at=None,
                attempts=0,
                sent_at=None,
                delivered_at=None,
                updated_at=now,
            )
            if enqueue:
                enqueue_dispatch(ids)  # what planning does in its transaction
        with connection.cursor() as cur:
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)" if vendor == "sqlite" else "VACUUM ANALYZE")

    def still_pending() -> int:
        return deliveries.filter(status="pending").count()

    def finished_since(started: datetime) -> float:
        """Seconds from ``started`` to the last delivery's write: its ``updated_at``, which both
        sides set as they write it (the polling only notices that the work is done)."""
        last = deliveries.aggregate(last=Max("updated_at"))["last"]
        return (last - started).total_seconds()

    def drain(commands: list[list[str]]) -> float:
        """Start the processes together; seconds until none of the deliveries is pending."""
        started = datetime.now(UTC)
        procs = [subprocess.Popen(c, env=env) for c in commands]
        done = None
        while done is None:
            time.sleep(POLL_SECONDS)
            running = [p for p in procs if p.poll() is None]
            if still_pending() == 0:
                done = finished_since(started)
            elif not running:
                failed = DBTaskResult.objects.filter(status="FAILED").values_list("traceback", flat=True).first()
                later = DBTaskResult.objects.filter(status="READY").count()
                raise SystemExit(
                    f"the processes exited with {still_pending():,} deliveries still pending "
                    f"(exit codes {[p.returncode for p in procs]}, {later} tasks not ready yet)"
                    + (f"; a task failed:\n{failed}" if failed else "")
                )
        for p in procs:
            if p.wait(timeout=120) != 0:
                raise SystemExit(f"{p.args} exited with {p.returncode}")
        connection.close()  # each poll's reads must not keep a snapshot open across runs
        return done

    def drain_running(commands: list[list[str]], ready: str, go) -> float:
        """Start the processes, wait until each says ``ready``, then ``go()``; seconds from then until
        none of the deliveries is pending. What a running service does, without process start-up."""
        logs = [data_dir_of_run / f"proc-{k}.log" for k in range(len(commands))]
        procs = [
            subprocess.Popen(c, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
            for c, log in zip(commands, logs, strict=True)
        ]
        deadline = time.monotonic() + 120
        while not all(log.exists() and ready in log.read_text() for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("a process did not get ready:\n" + "\n".join(log.read_text() for log in logs))
            time.sleep(0.01)
        t, started = time.perf_counter(), datetime.now(UTC)
        go()
        while still_pending():
            time.sleep(POLL_SECONDS)
            if time.perf_counter() - t > 600:
                raise SystemExit("the running processes did not finish in 10 minutes")
        done = finished_since(started)
        for p in procs:
            if p.poll() is None:
                p.terminate()
            p.wait(timeout=60)
        connection.close()
        return done

    def enqueue_now() -> None:
        with transaction.atomic():
            enqueue_dispatch(ids)

    def dispatch_running(procs: int) -> float:
        reset(enqueue=False)
        elapsed = drain_running(
            [[*RUNNING_WORKER, "--worker-id", f"bench-{k}"] for k in range(procs)], "Starting worker", enqueue_now
        )
        if Counter(deliveries.values_list("status", flat=True)) != Counter({"delivered": args.n}):
            raise SystemExit("expected every delivery delivered")
        return elapsed

    def baseline_running(procs: int) -> float:
        reset(enqueue=False)
        go = data_dir_of_run / "go"
        go.unlink(missing_ok=True)
        me = [sys.executable, __file__, "--_message", str(message_id), "--_go", str(go)]
        elapsed = drain_running([[*me, "--_baseline", f"{k}/{procs}"] for k in range(procs)], "ready", go.touch)
        if deliveries.filter(status="delivered").exclude(provider_ref="").count() != args.n:
            raise SystemExit("the baseline left deliveries undelivered")
        return elapsed

    def dispatch_run(procs: int) -> float:
        reset(enqueue=True)
        elapsed = drain([[*WORKER, "--worker-id", f"bench-{k}"] for k in range(procs)])
        failed = DBTaskResult.objects.filter(status="FAILED").values_list("traceback", flat=True).first()
        if failed:
            raise SystemExit(f"a dispatch task failed:\n{failed}")
        outcome = Counter(deliveries.values_list("status", flat=True))
        if outcome != Counter({"delivered": args.n}):
            raise SystemExit(f"expected every delivery delivered, got {dict(outcome)}")
        return elapsed

    def baseline_run(procs: int) -> float:
        reset(enqueue=False)
        me = [sys.executable, __file__, "--_message", str(message_id)]
        elapsed = drain([[*me, "--_baseline", f"{k}/{procs}"] for k in range(procs)])
        if deliveries.filter(status="delivered").exclude(provider_ref="").count() != args.n:
            raise SystemExit("the baseline left deliveries undelivered")
        return elapsed

    # --- start-up of a process that finds nothing to do ---------------------------
    reset(enqueue=False)
    t = time.perf_counter()
    subprocess.run(WORKER, env=env, check=True)
    startup_worker = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--_message", str(uuid.uuid4()), "--_baseline", "0/1"], env=env, check=True
    )
    startup_baseline = time.perf_counter() - t

    # --- 3-4. timed runs, interleaved ---------------------------------------------
    best: dict = {}
    times: dict = {}  # (kind, processes) -> each repetition's time, in order
    for _ in range(args.repeat):
        for procs in (1, 2):
            for kind, fn in (
                ("ours", dispatch_run),
                ("baseline", baseline_run),
                ("ours running", dispatch_running),
                ("baseline running", baseline_running),
            ):
                elapsed = fn(procs)
                best[kind, procs] = min(best.get((kind, procs), float("inf")), elapsed)
                times.setdefault((kind, procs), []).append(elapsed)

    def ratios(ours: str, base: str, procs: int) -> list[float]:
        """The ratio of each repetition, its two sides measured one right after the other."""
        return [b / o for o, b in zip(times[ours, procs], times[base, procs], strict=True)]

    runs = f"best of {args.repeat}" if args.repeat > 1 else "one run"
    print(f"start-up, empty queue: consentry worker {startup_worker:.2f} s, baseline process {startup_baseline:.2f} s")
    print(f"\n{'':<32}{'processes':>10}{'time':>9}{'deliveries/s':>14}")
    rows = []
    for procs in (1, 2):
        ours, base = best["ours", procs], best["baseline", procs]
        print(f"  {'dispatch: consentry worker':<30}{procs:>10}{ours:>8.2f}s{args.n / ours:>14,.0f}")
        print(f"  {'baseline: 1 UPDATE/transaction':<30}{procs:>10}{base:>8.2f}s{args.n / base:>14,.0f}")
        ratio = base / ours
        print(
            f"  {'ratio dispatch/baseline rate':<30}{procs:>10}{ratio:>9.2f}  "
            f"({'meets' if ratio >= TARGET else 'MISSES'} the target of {TARGET:.1f})"
        )
        # Workers are long-lived: processes already running when the work appears is the rate a
        # running service drains at.
        net_ours, net_base = best["ours running", procs], best["baseline running", procs]
        print(f"  {'running: dispatch':<30}{procs:>10}{net_ours:>8.2f}s{args.n / net_ours:>14,.0f}")
        print(f"  {'running: baseline':<30}{procs:>10}{net_base:>8.2f}s{args.n / net_base:>14,.0f}")
        print(
            f"  {'ratio, processes running':<30}{procs:>10}{net_base / net_ours:>9.2f}  "
            f"({'meets' if net_base / net_ours >= TARGET else 'MISSES'} the target of {TARGET:.1f})"
        )
        per_run = ratios("ours", "baseline", procs)
        net_per_run = ratios("ours running", "baseline running", procs)
        if args.repeat > 1:
            print(
                f"  {'ratio of each repetition':<30}{procs:>10}  with start-up: min {min(per_run):.2f}, median "
                f"{statistics.median(per_run):.2f}; running: min {min(net_per_run):.2f}, median "
                f"{statistics.median(net_per_run):.2f}  ({', '.join(f'{r:.2f}' for r in net_per_run)})"
            )
        rows.append(
            {
                "procs": procs,
                "ours": args.n / ours,
                "baseline": args.n / base,
                "net_ours": args.n / net_ours,
                "net_baseline": args.n / net_base,
                "ratios": per_run,
                "net_ratios": net_per_run,
            }
        )
    print(
        f"  [{runs}; times from the processes' start until no delivery is pending, to the last delivery's updated_at]",
        flush=True,
    )
    Path(args.run).write_text(json.dumps({"rows": rows, "startup": [startup_worker, startup_baseline]}))

    if args.profile:
        plain = float("inf")
        for _ in range(args.repeat):
            reset(enqueue=True)
            t = time.perf_counter()
            _worker().run()
            plain = min(plain, time.perf_counter() - t)
            connection.close()
        print(
            f"\none worker draining in this process, no profiler ({runs}): {plain:.2f} s, "
            f"{args.n / plain:,.0f} deliveries/s, {plain / args.n * 1e6:,.0f} µs per delivery"
        )
        reset(enqueue=True)
        profile_drain(args.profile, args.n, n_tasks)
        reset(enqueue=True)
        count_queries(args.n)


# --- the baseline process ------------------------------------------------------


def baseline_process(args) -> None:
    """The simplest dispatcher: for each delivery, one transaction that marks it delivered."""
    _django()
    from django.db import connection, transaction

    from consentry.messaging.models import Delivery

    shard, shards = (int(x) for x in args.baseline.split("/"))
    table = Delivery._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {table} WHERE message_id = %s ORDER BY id", [_db_uuid(connection, args.message)])
        ids = [row[0] for row in cur.fetchall()]
    size = -(-len(ids) // shards)
    if args.go:  # ready, then wait for the signal: timed without the process's start-up
        print("ready", flush=True)
        while not os.path.exists(args.go):
            time.sleep(0.001)
    sql = f"UPDATE {table} SET status = %s, provider_ref = %s, updated_at = %s WHERE id = %s"
    for pk in ids[shard * size : (shard + 1) * size]:
        with transaction.atomic(), connection.cursor() as cur:
            now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
            cur.execute(sql, ["delivered", f"BL{pk:032d}", now, pk])


def _db_uuid(connection, value: str):
    return uuid.UUID(value).hex if connection.vendor == "sqlite" else uuid.UUID(value)


# --- where the time goes -------------------------------------------------------


def _worker():
    from django_tasks_db.management.commands.db_worker import Worker

    return Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="bench-profile",
        excluded_queue_names=[],
    )


# Functions whose cumulative time is reported (a regular expression on "file:function").
PROFILED = (
    ("whole drain (Worker.run)", r"db_worker\.py:run$"),
    ("  task claim (get_locked + claim)", r"models\.py:(get_locked|claim)$"),
    ("  task result saved (set_successful)", r"models\.py:set_successful$"),
    ("  close_old_connections (reconnects)", r"django/db/__init__\.py:close_old_connections$"),
    ("  dispatch_deliveries (the task)", r"tasks\.py:dispatch_deliveries$"),
    ("    locked read of a chunk (read)", r"tasks\.py:read$"),
    ("    practices, messages, routes (attach)", r"tasks\.py:attach$"),
    ("      category rows (per task)", r"categories\.py:category_row$"),
    ("    opt-out hints (Hints.load)", r"hints\.py:load$"),
    ("    consent check (consent_state)", r"ledger\.py:consent_state$"),
    ("    batch stored and recorded (store)", r"tasks\.py:store$"),
    ("      render (personalize)", r"rendering\.py:render$"),
    ("      provider send (sandbox insert)", r"sandbox\.py:send_many$"),
    ("      answers recorded (handed_over)", r"status\.py:handed_over$"),
    ("        event outbox check (deliveries_changed)", r"emit\.py:deliveries_changed$"),
    ("    dispatch_one", r"tasks\.py:dispatch_one$"),
    ("    status moves (move)", r"status\.py:move$"),
    ("    Model.save (all updates)", r"django/db/models/base\.py:save$"),
    ("    DeliveryEvent inserts (create)", r"django/db/models/query\.py:create$"),
    ("  Fernet encrypt + decrypt", r"fernet\.py:(encrypt|decrypt)$"),
    ("  SQL executed (cursor.execute)", r"backends/utils\.py:_execute$"),
    ("  transaction commits", r"base/base\.py:_commit$"),
)


def profile_drain(path: str, n: int, n_tasks: int) -> None:
    import cProfile
    import pstats

    from django.db import connection

    worker = _worker()
    profiler = cProfile.Profile()
    t = time.perf_counter()
    profiler.enable()
    worker.run()
    profiler.disable()
    elapsed = time.perf_counter() - t
    connection.close()
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    by_name: dict[str, tuple[int, float, float]] = {}
    for (filename, _line, func), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
        key = f"{filename}:{func}"
        prev = by_name.get(key, (0, 0.0, 0.0))
        by_name[key] = (prev[0] + calls, prev[1] + tottime, prev[2] + cumtime)
    print(
        f"\none worker draining in this process under cProfile: {elapsed:.2f} s for {n:,} deliveries "
        f"and {n_tasks} tasks ({elapsed / n * 1e6:,.0f} µs per delivery with profiling overhead); stats in {path}"
    )
    print(f"  {'':<40}{'calls':>9}{'cum. s':>9}{'µs/delivery':>13}{'share':>8}")
    for label, pattern in PROFILED:
        rx = re.compile(pattern)
        hits = [v for k, v in by_name.items() if rx.search(k)]
        calls = sum(h[0] for h in hits)
        cum = sum(h[2] for h in hits)
        print(f"  {label:<40}{calls:>9,}{cum:>9.2f}{cum / n * 1e6:>13,.0f}{cum / elapsed:>8.0%}")
    print("  (cumulative times overlap: nested lines are part of the line above them)")
    print("\n  top 15 functions by own time:")
    for (filename, line, func), (_cc, calls, tottime, _cum, _callers) in sorted(
        stats.stats.items(), key=lambda kv: -kv[1][2]
    )[:15]:
        where = filename.split("site-packages/")[-1].split("/src/")[-1]
        print(f"    {tottime:>7.2f}s {calls:>9,}  {where}:{line}({func})")


_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def count_queries(n: int) -> None:
    from django.db import connection

    kinds: Counter = Counter()
    seconds: Counter = Counter()

    def counted(execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper()
        table = _TABLE.search(sql)
        kind = f"{verb} {table.group(1)}" if table and verb not in ("BEGIN", "SAVEPOINT", "RELEASE") else verb
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seconds[kind] += time.perf_counter() - t
            kinds[kind] += 1

    commits = _pg_commits(connection)
    # An execute wrapper stays on the connection object across the worker's reconnects.
    t = time.perf_counter()
    with connection.execute_wrapper(counted):
        _worker().run()
    elapsed = time.perf_counter() - t
    total = sum(kinds.values())
    in_sql = sum(seconds.values())
    print(
        f"\nSQL statements while one worker drains {n:,} deliveries: {total:,} ({total / n:.1f} per delivery); "
        f"{in_sql:.2f} s of {elapsed:.2f} s inside the database driver's execute ({in_sql / elapsed:.0%}; "
        "commits are not included)"
    )
    print(f"  {'statements':>10}{'per delivery':>14}{'µs/delivery':>13}  statement")
    for kind, count in kinds.most_common():
        print(f"  {count:>10,}{count / n:>14.2f}{seconds[kind] / n * 1e6:>13,.0f}  {kind}")
    if commits is not None:
        connection.close()
        time.sleep(1.5)  # the statistics collector reports a closed backend's counts within a second
        done = _pg_commits(connection) - commits
        print(
            f"  {done:,} transactions committed on the server ({done / n:.2f} per delivery; "
            "PostgreSQL logs no BEGIN or COMMIT statement)"
        )


def _pg_commits(connection) -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cur.fetchone()[0]


if __name__ == "__main__":
    main()
