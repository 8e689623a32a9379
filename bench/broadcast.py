"""Benchmark planning a broadcast to a whole practice against a raw bulk insert of its rows.

On a fresh temporary SQLite database (its own temp dir, migrated here) this:

1. creates one practice with ``create_practice`` and ``--n`` patients (default
   100,000; ``--n 1000000`` for a million, about half an hour) with
   ``bulk_create`` straight on the models: families sharing a caregiver phone,
   landlines, invalid numbers, emails (see ``_setup.population``);
2. records the consent state (SMS opt-outs, email unsubscribes and bounces,
   Blocked Communications) through ``consent.ledger.record``, one event and one
   transaction per address, the real path; timed on its own;
3. plans ``create_message(kind="broadcast", category="recall", ...)`` to every
   patient once in this process under ``CaptureQueriesContext`` (the SQL
   statements by kind and table; also warms the database file up) and keeps
   its rows as the baseline's source;
4. then, in a fresh process each (``--repeat`` times, interleaved), so that the
   peak resident memory (VmHWM, the high-water mark of its own address space) is the run's own:
   - plans the broadcast to ``EVERY_PATIENT`` (one streamed read of the practice);
   - plans it to the list of every patient's id, given the way the API or a
     staff audience gives it (the list is loaded before the clock starts);
   - baseline: inserts the same delivery rows (same columns, same values) raw
     with ``connection.cursor().executemany`` in one transaction (the rows are
     read into memory before the clock starts, as the planner's input is);
   and a process that only starts Django, for the floor of the memory figures.

Between runs the deliveries and dispatch tasks written are deleted and the WAL is
checkpointed, so every measured run starts from the same database. ``--tracemalloc``
also measures Python's own peak allocation of each side in this process (slow).

    .venv/bin/python bench/broadcast.py [--n 100000] [--repeat 3] [--analyze] [--tracemalloc]
                                        [--profile FILE] [--keep]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup  # noqa: E402

CONTENT = {
    "sms": "Hi, it's time for your check-up at Bench Dental. Reply to book, STOP to opt out.",
    "voice": "Hello, this is Bench Dental. It is time for your regular check-up. Please call us to book.",
    "email": {"subject": "Time for your check-up", "text": "It is time for your regular check-up. Reply to book."},
}
TARGET_RATIO = 3.0
SOURCE_TABLE = "bench_source"  # the warm-up plan's rows, the baseline's input
SOURCE_COLUMNS = (
    "message_id",
    "practice_id",
    "patient_id",
    "channel",
    "address",
    "status",
    "reason",
    "recipient_timezone",
)
DELIVERY_COLUMNS = (
    *SOURCE_COLUMNS,
    "provider_ref",
    "error",
    "attempted_at",
    "sent_at",
    "delivered_at",
    "updated_at",
)
SIDES = {
    "plan": "plan: create_message(EVERY_PATIENT)",
    "plan_list": "plan: create_message(list of ids)",
    "raw": "raw: executemany, 1 transaction",
    "idle": "a process that only starts Django",
}


def mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="patients (default 100,000; try 1000000)")
    ap.add_argument("--repeat", type=int, default=3, help="fresh-process runs of each side (default 3)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--keep", action="store_true", help="keep the temporary database directory")
    ap.add_argument(
        "--analyze",
        action="store_true",
        help="run ANALYZE after loading the data, so SQLite's planner has statistics "
        "(a fresh database, like a new deployment, has none)",
    )
    ap.add_argument("--tracemalloc", action="store_true", help="also measure each side's peak under tracemalloc")
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="also plan once under cProfile, save the stats to FILE and print the top functions",
    )
    ap.add_argument("--child", choices=sorted(SIDES), help=argparse.SUPPRESS)  # one measured run, in a child
    ap.add_argument("--practice", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return

    tmp = _setup.django_on_temp_sqlite()
    try:
        run(args, tmp)
    finally:
        if args.keep:
            print(f"\ndatabase kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_tasks_db.models import DBTaskResult

    from consentry.consent import ledger
    from consentry.consent.models import Subject
    from consentry.messaging.models import Delivery
    from consentry.messaging.planning import create_message
    from consentry.messaging.recipients import EVERY_PATIENT
    from consentry.patients.models import ContactPoint, PatientContact
    from consentry.patients.practices import create_practice

    load = os.getloadavg()
    print(f"broadcast planning benchmark, Python {sys.version.split()[0]}, SQLite {connection.Database.sqlite_version}")
    print(f"database: {tmp / 'bench.sqlite3'}; {os.cpu_count()} cores, load average {load[0]:.1f} at the start")

    # --- 1. population --------------------------------------------------------
    t0 = time.perf_counter()
    pop = _setup.population(args.n, args.seed)
    # No quiet hours: the figures must not depend on the hour the benchmark runs at.
    practice, _key = create_practice(
        name="Bench Dental", texting_number="+12025550100", send_window=(clock_time(0, 0), clock_time(0, 0))
    )
    all_ids = _setup.seed_patients(practice, pop)
    t_pop = time.perf_counter() - t0
    print(f"population: {_setup.describe(pop)}")
    print(
        f"  bulk-created {len(all_ids):,} patients, {ContactPoint.objects.count():,} contact points, "
        f"{PatientContact.objects.count():,} patient-contact links in {t_pop:.1f} s"
    )

    # --- 2. consent state through the ledger ---------------------------------
    c = pop.consent
    events = (
        [(Subject.SMS, a, "opted_out") for a in c.sms_opted_out]
        + [(Subject.EMAIL, a, "unsubscribed") for a in c.email_unsubscribed]
        + [(Subject.EMAIL, a, "bounced") for a in c.email_bounced]
        + [(Subject.BLOCK, a, _json(cats)) for a, cats in c.blocks.items()]
    )
    t0 = time.perf_counter()
    for subject, address, state in events:
        ledger.record(practice=practice, subject=subject, address=address, state=state, source="import", actor="bench")
    t_ledger = time.perf_counter() - t0
    print(
        f"  ledger.record: {len(events):,} consent events (one transaction each) in {t_ledger:.1f} s, "
        f"{len(events) / t_ledger:,.0f} events/s, {t_ledger / len(events) * 1e3:.2f} ms/event"
    )
    del pop, events
    if args.analyze:
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
        print("  ANALYZE run: the query planner has statistics")

    tasks_table = DBTaskResult._meta.db_table
    delivery_table = Delivery._meta.db_table

    def reset() -> None:
        with connection.cursor() as cur:
            cur.execute(f'DELETE FROM "{delivery_table}"')
            cur.execute(f'DELETE FROM "{tasks_table}"')
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        gc.collect()

    def plan():
        return create_message(
            practice=practice, kind="broadcast", category="recall", patient_ids=EVERY_PATIENT, content=CONTENT
        )

    # --- 3. plan under query capture (also the warm-up and the source of the raw rows) ---
    with CaptureQueriesContext(connection) as captured:
        planned = plan()
    n_deliveries = planned.report.total
    message_id = planned.message.pk
    n_tasks = DBTaskResult.objects.count()
    mix = Counter(
        (status, reason or "-", channel)
        for status, reason, channel in Delivery.objects.filter(message_id=message_id).values_list(
            "status", "reason", "channel"
        )
    )
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {SOURCE_TABLE}")
        cur.execute(
            f"CREATE TABLE {SOURCE_TABLE} AS SELECT {', '.join(SOURCE_COLUMNS)} "
            f'FROM "{delivery_table}" WHERE message_id = %s ORDER BY id',
            [message_id.hex],
        )
        cur.execute(f"SELECT COUNT(*) FROM {SOURCE_TABLE}")
        assert cur.fetchone()[0] == n_deliveries
    query_kinds = Counter(_query_kind(q["sql"]) for q in captured.captured_queries)
    del planned, captured
    reset()
    connection.close()

    # --- 4. fresh processes, interleaved --------------------------------------
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for _ in range(args.repeat):
        for side in ("plan", "plan_list", "raw"):
            answer = _in_child(side, practice.pk)
            assert answer["deliveries"] == n_deliveries, (side, answer, n_deliveries)
            runs[side].append(answer)
            reset()
            connection.close()
    runs["idle"].append(_in_child("idle", practice.pk))
    load_end = os.getloadavg()

    traced = {}
    if args.tracemalloc:
        traced["plan"] = _traced(plan)
        reset()
        traced["raw"] = _traced(lambda: _raw(practice.pk))
        reset()

    # --- report ---------------------------------------------------------------
    pending = sum(v for (status, _, _), v in mix.items() if status == "pending")
    print(
        f"\nbroadcast to {len(all_ids):,} patients -> {n_deliveries:,} deliveries "
        f"({pending:,} pending), {n_tasks:,} dispatch tasks"
    )
    print("  deliveries by status / reason / channel:")
    for (status, reason, channel), v in sorted(mix.items(), key=lambda kv: -kv[1]):
        print(f"    {status:<8} {reason:<24} {channel:<6} {v:>9,}  {v / n_deliveries:6.1%}")
    total_queries = sum(query_kinds.values())
    print(f"  SQL statements issued by create_message: {total_queries:,} (an executemany counts once)")
    for kind, v in sorted(query_kinds.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {v:>6,}  {kind}")

    print(
        f"\neach side in a fresh process, {args.repeat} run(s): time min / median, peak RSS (VmHWM) "
        "min / median, RSS before the clock started"
    )
    print(f"  {'':<38}{'time':>15}{'deliveries/s':>14}{'peak RSS':>22}{'RSS before':>12}")
    for side, label in SIDES.items():
        got = runs[side]
        rss = [r["maxrss"] for r in got]
        before = statistics.median(r["rss_before"] for r in got)
        if side == "idle":
            print(f"  {label:<38}{'':>15}{'':>14}{_pair(rss, mb):>22}{mb(before):>12}")
            continue
        secs = [r["seconds"] for r in got]
        print(
            f"  {label:<38}{_pair(secs, lambda s: f'{s:.2f}s'):>15}{n_deliveries / min(secs):>14,.0f}"
            f"{_pair(rss, mb):>22}{mb(before):>12}"
        )
    raw = min(r["seconds"] for r in runs["raw"])
    raw_median = statistics.median(r["seconds"] for r in runs["raw"])
    for side in ("plan", "plan_list"):
        best = min(r["seconds"] for r in runs[side]) / raw
        median = statistics.median(r["seconds"] for r in runs[side]) / raw_median
        verdict = "within" if best <= TARGET_RATIO else "MISSES"
        print(
            f"  ratio {side}/raw: time {best:.2f}x best, {median:.2f}x median ({verdict} the {TARGET_RATIO:.0f}x "
            f"target); peak RSS {min(r['maxrss'] for r in runs[side]) / min(r['maxrss'] for r in runs['raw']):.2f}x"
        )
    print(f"  load average {load[0]:.1f} at the start, {load_end[0]:.1f} after the runs ({os.cpu_count()} cores)")
    if traced:
        print("\nin this process under tracemalloc (Python's allocations only; slow):")
        for side, (elapsed, peak) in traced.items():
            print(f"  {SIDES[side]:<38}peak {mb(peak):>10}   time traced {elapsed:.2f}s")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        planned = plan()
        profiler.disable()
        del planned
        reset()
        profiler.dump_stats(args.profile)
        print(f"\ncProfile of one plan run saved to {args.profile}; top 25 by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def _pair(values: list[float], show) -> str:
    return f"{show(min(values))} / {show(statistics.median(values))}"


def _in_child(side: str, practice_id) -> dict:
    """One measured run in a fresh process on this database; what it reports."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", side, "--practice", str(practice_id)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {side} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(args) -> None:
    """Run one side in this fresh process and print it as JSON: seconds, deliveries, peak RSS (bytes)."""
    import django

    django.setup()
    from consentry.messaging.planning import create_message
    from consentry.messaging.recipients import EVERY_PATIENT
    from consentry.patients.models import Patient, Practice

    practice = Practice.objects.get(pk=args.practice)
    seconds, deliveries, before = 0.0, 0, _maxrss()
    if args.child in ("plan", "plan_list"):
        ids = EVERY_PATIENT
        if args.child == "plan_list":  # as a caller holds them: text, as the API receives them
            ids = [str(pk) for pk in Patient.objects.filter(practice=practice).values_list("pk", flat=True)]
        before = _maxrss()
        gc.collect()
        t = time.perf_counter()
        planned = create_message(
            practice=practice, kind="broadcast", category="recall", patient_ids=ids, content=CONTENT
        )
        seconds = time.perf_counter() - t
        deliveries = planned.report.total
    elif args.child == "raw":
        rows = _source_rows()
        before = _maxrss()
        gc.collect()
        t = time.perf_counter()
        deliveries = _insert(rows)
        seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "deliveries": deliveries, "maxrss": _maxrss(), "rss_before": before}))


def _maxrss() -> int:
    """This process's peak resident memory, in bytes: VmHWM, the high-water mark of its own address space.

    Not ``ru_maxrss``: Linux carries that across ``exec`` from the address space the process had
    before (here a fork of the benchmark with its whole population), so every child would report
    at least the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _source_rows() -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f"SELECT {', '.join(SOURCE_COLUMNS)} FROM {SOURCE_TABLE}")
        return cur.fetchall()


def _insert(source_rows: list[tuple]) -> int:
    from django.db import connection, transaction

    from consentry.messaging.models import Delivery

    sql = (
        f'INSERT INTO "{Delivery._meta.db_table}" ({", ".join(DELIVERY_COLUMNS)}) '
        f"VALUES ({', '.join(['%s'] * len(DELIVERY_COLUMNS))})"
    )
    updated_at = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    params = [(*row, "", "", None, None, None, updated_at) for row in source_rows]
    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(sql, params)
    return len(params)


def _raw(practice_id) -> int:
    return _insert(_source_rows())


def _traced(fn) -> tuple[float, int]:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    t = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    del out
    tracemalloc.stop()
    return elapsed, peak


def _json(categories) -> str:
    return json.dumps(sorted(set(categories)))


_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)
_TIMES = re.compile(r"^\d+ times: ")  # how Django records an executemany


def _query_kind(sql: str) -> str:
    """A statement as its verb and first table: "INSERT messaging_delivery", "SELECT patients_patient"."""
    sql = _TIMES.sub("", sql.lstrip())
    verb = sql.split(None, 1)[0].upper()
    table = _TABLE.search(sql)
    return f"{verb} {table.group(1)}" if table else verb


if __name__ == "__main__":
    main()
