"""Benchmark planning a broadcast to a whole practice against a raw bulk insert of its rows.

On a fresh temporary SQLite database (its own temp dir, migrated here) this:

1. creates one practice with ``create_practice`` and ``--n`` patients (default
   100,000) with ``bulk_create`` straight on the models: families sharing a
   caregiver phone, landlines, invalid numbers, emails (see ``_setup.population``);
2. records the consent state (SMS opt-outs, email unsubscribes and bounces,
   Blocked Communications) through ``consent.ledger.record``, one event and one
   transaction per address, the real path; timed on its own;
3. plans ``create_message(kind="broadcast", category="recall", ...)`` to every
   patient, first under ``CaptureQueriesContext`` (query count; also warms the
   database file up), then timed, then under ``tracemalloc`` (peak memory);
4. baseline: the same delivery rows (same columns, same values) inserted raw with
   ``connection.cursor().executemany`` in one transaction into the same table,
   timed and then measured under ``tracemalloc`` the same way.

Between runs the deliveries and dispatch tasks written are deleted and the WAL is
checkpointed, so every measured run starts from the same database. Timed runs are
run without tracemalloc or query capture (both slow Python down).

    .venv/bin/python bench/broadcast.py [--n 100000] [--repeat 1] [--analyze] [--profile FILE] [--keep]
"""

from __future__ import annotations

import argparse
import gc
import re
import shutil
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
DELIVERY_COLUMNS = (
    "message_id",
    "practice_id",
    "patient_id",
    "channel",
    "address",
    "status",
    "reason",
    "recipient_timezone",
    "provider_ref",
    "error",
    "attempted_at",
    "sent_at",
    "delivered_at",
    "updated_at",
)


def mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="patients (default 100,000)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of plan and raw, best kept (default 1)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--keep", action="store_true", help="keep the temporary database directory")
    ap.add_argument(
        "--analyze",
        action="store_true",
        help="run ANALYZE after loading the data, so SQLite's planner has statistics "
        "(a fresh database, like a new deployment, has none)",
    )
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="also plan once under cProfile, save the stats to FILE and print the top functions",
    )
    args = ap.parse_args(argv)

    tmp = _setup.django_on_temp_sqlite()
    try:
        run(args, tmp)
    finally:
        if args.keep:
            print(f"\ndatabase kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path) -> None:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django_tasks_db.models import DBTaskResult

    from consentry.consent import ledger
    from consentry.consent.models import Subject
    from consentry.messaging.models import Delivery
    from consentry.messaging.planning import create_message
    from consentry.patients.models import ContactPoint, PatientContact
    from consentry.patients.practices import create_practice

    print(f"broadcast planning benchmark, Python {sys.version.split()[0]}, SQLite {connection.Database.sqlite_version}")
    print(f"database: {tmp / 'bench.sqlite3'}")

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
    del pop
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
            practice=practice, kind="broadcast", category="recall", patient_ids=all_ids, content=CONTENT
        )

    # --- 3a. plan under query capture (also the warm-up and the source of the raw rows) ---
    with CaptureQueriesContext(connection) as captured:
        planned = plan()
    n_deliveries = len(planned.deliveries)
    message_id = planned.message.pk
    n_tasks = DBTaskResult.objects.count()
    mix = Counter(
        (status, reason or "-", channel)
        for status, reason, channel in Delivery.objects.filter(message_id=message_id).values_list(
            "status", "reason", "channel"
        )
    )
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT message_id, practice_id, patient_id, channel, address, status, reason, recipient_timezone "
            f'FROM "{delivery_table}" '
            "WHERE message_id = %s ORDER BY id",
            [message_id.hex],
        )
        source_rows = cur.fetchall()
    assert len(source_rows) == n_deliveries, (len(source_rows), n_deliveries)
    query_kinds = Counter(_query_kind(q["sql"]) for q in captured.captured_queries)
    del planned, captured
    reset()

    insert_sql = (
        f'INSERT INTO "{delivery_table}" ({", ".join(DELIVERY_COLUMNS)}) '
        f"VALUES ({', '.join(['%s'] * len(DELIVERY_COLUMNS))})"
    )

    def raw():
        updated_at = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
        params = [(*row, "", "", None, None, None, updated_at) for row in source_rows]
        with transaction.atomic(), connection.cursor() as cur:
            cur.executemany(insert_sql, params)
        return len(params)

    def timed(fn):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    def traced(fn):
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

    # --- 3b/4. timed runs, interleaved ---------------------------------------
    t_plan = t_raw = float("inf")
    for _ in range(args.repeat):
        t, planned = timed(plan)
        assert len(planned.deliveries) == n_deliveries
        del planned
        t_plan = min(t_plan, t)
        reset()
        t, written = timed(raw)
        assert written == n_deliveries
        t_raw = min(t_raw, t)
        reset()

    # --- 3c/4. peak memory ----------------------------------------------------
    tm_plan, peak_plan = traced(plan)
    reset()
    tm_raw, peak_raw = traced(raw)
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
    print(f"  SQL queries issued by create_message: {total_queries:,}")
    for kind, v in sorted(query_kinds.items(), key=lambda kv: -kv[1]):
        print(f"    {v:>6,}  {kind}")

    best = f"best of {args.repeat}" if args.repeat > 1 else "one run"
    print(f"\n{'':<34}{'time':>9}{'deliveries/s':>14}{'peak (tracemalloc)':>20}{'time traced':>13}")
    print(
        f"  {'plan: create_message(...)':<32}{t_plan:>8.2f}s{n_deliveries / t_plan:>14,.0f}{mb(peak_plan):>20}{tm_plan:>12.2f}s"
    )
    print(
        f"  {'raw: executemany, 1 transaction':<32}{t_raw:>8.2f}s{n_deliveries / t_raw:>14,.0f}{mb(peak_raw):>20}{tm_raw:>12.2f}s"
    )
    ratio = t_plan / t_raw
    verdict = "within" if ratio <= TARGET_RATIO else "MISSES"
    print(
        f"  ratio plan/raw: time {ratio:.2f}x ({verdict} the {TARGET_RATIO:.0f}x target), "
        f"peak memory {peak_plan / max(peak_raw, 1):.1f}x   [times: {best}, untraced]"
    )

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


def _json(categories) -> str:
    import json

    return json.dumps(sorted(set(categories)))


_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"', re.IGNORECASE)


def _query_kind(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper()
    table = _TABLE.search(sql)
    return f"{verb} {table.group(1)}" if table else verb


if __name__ == "__main__":
    main()
