"""Benchmark a CSV import of patients against a raw insert of the same rows into the same tables.

On a fresh temporary SQLite database (its own temp dir, migrated here) this:

1. writes a CSV file of ``--n`` patients (default 100,000) from ``_setup.population``: families
   sharing a caregiver's phone, landlines, invalid numbers, emails, preferred phones,
   do-not-contact, marketing consent, and legacy opt-outs (an old system's UNSUB: ``sms_opt_out``
   for 3% of phones, ``email_unsubscribed`` for 2% of emails); phones in national format, as a PMS
   exports them (every one is parsed and normalized);
2. imports it with ``records.imports.import_patients`` into a new practice, timed: the whole of it
   (reading, checking every row, one transaction of batched writes and ledger events), and its
   check alone; then checks the ledger (``verify_chain``, ``projection_matches``);
3. imports the same file again: every row is an existing patient, unchanged (the re-import path);
   then once more with 1% of the rows changed (a new last name): those go through
   ``sync.update_from`` one by one, and the cost of one is printed;
4. baseline: the rows the import wrote (contact points, patients, links, ledger events, consent
   projection), read back and inserted raw with ``connection.cursor().executemany`` in one
   transaction into the same tables, for another practice. The ratio import/raw is printed.

With ``--repeat`` each timed run gets a practice of its own (the ledger is append-only: nothing is
deleted between runs) and the best time is kept.

    .venv/bin/python bench/import.py [--n 100000] [--repeat 1] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import random
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup  # noqa: E402

TARGET_SECONDS = 60.0
LEGACY_SMS_OPT_OUT = 0.03
LEGACY_EMAIL_UNSUBSCRIBED = 0.02
CHANGED_SHARE = 0.01  # rows changed for the third import (their patients are updated one by one)


def national(number: str) -> str:
    """+12025550123 as (202) 555-0123."""
    digits = number[2:]
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def make_csv(n: int, seed: int) -> tuple[bytes, str]:
    pop = _setup.population(n, seed)
    rng = random.Random(seed + 1)
    opted_out = set(rng.sample(sorted(pop.phones), int(len(pop.phones) * LEGACY_SMS_OPT_OUT)))
    unsubscribed = set(rng.sample(pop.emails, int(len(pop.emails) * LEGACY_EMAIL_UNSUBSCRIBED)))
    from consentry.records.imports import COLUMNS  # every column the importer reads

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for spec in pop.patients:
        phone = spec.phones[0] if spec.phones else None
        if spec.preferred_phone:  # one phone per row: the preferred one, when there is one
            phone = next(p for p in spec.phones if p.number == spec.preferred_phone)
        email = spec.emails[0] if spec.emails else ""
        writer.writerow(
            {
                "external_id": f"pms-{spec.index}",
                "first_name": spec.first_name,
                "last_name": "Bench",
                "phone": national(phone.number) if phone else "",
                "line_type": phone.line_type if phone else "",
                "email": email,
                "preferred": "yes" if spec.preferred_phone else "",
                "do_not_contact": "yes" if spec.do_not_contact else "no",
                "marketing_consent": spec.marketing_consent,
                "sms_opt_out": "yes" if phone and phone.number in opted_out else "",
                "email_unsubscribed": "yes" if email in unsubscribed else "",
            }
        )
    return out.getvalue().encode(), _setup.describe(pop)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="patients (default 100,000)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of import and raw, best kept (default 1)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--keep", action="store_true", help="keep the temporary database directory")
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

    from consentry.consent import ledger
    from consentry.consent.models import ConsentEvent, ContactConsent
    from consentry.patients.models import ContactPoint, Patient, PatientContact
    from consentry.patients.practices import create_practice
    from consentry.records.imports import check, import_patients

    print(f"CSV import benchmark, Python {sys.version.split()[0]}, SQLite {connection.Database.sqlite_version}")
    data, described = make_csv(args.n, args.seed)
    print(f"population: {described}")
    print(f"file: {args.n:,} rows, {len(data) / 2**20:,.1f} MB")

    practices = iter(range(1, 1000))

    def new_practice():
        i = next(practices)
        return create_practice(name=f"Bench {i}", texting_number=f"+1202555{i:04d}")[0]

    def timed(fn):
        """(wall seconds, CPU seconds of this process, fn's answer). SQLite runs in this process, so
        the CPU time holds the database's work too, and not the other processes' on a busy machine."""
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        return (time.perf_counter() - t, time.process_time() - c), out

    # --- 2. the import ---------------------------------------------------------------------------------------------
    t_check, checked = timed(lambda: check(data))
    assert not checked.problems, checked.problems[:5]
    del checked
    t_import, imported = (float("inf"), 0.0), None
    for _ in range(args.repeat):
        practice = new_practice()
        t, report = timed(
            lambda p=practice: import_patients(p, data, file_name="patients.csv", actor="bench")  # noqa: B023
        )
        assert report.applied and report.created == args.n, report.summary()
        if t < t_import:
            t_import, imported = t, (practice, report)
    practice, report = imported
    chain, matches = ledger.verify_chain(practice.pk), ledger.projection_matches(practice.pk)
    print(f"\nimport: {report.summary()}")
    print(
        f"  ledger: {chain.checked:,} events, chain {'ok' if chain.ok else 'BROKEN'}, projection "
        f"{'matches' if matches else 'DIFFERS'}"
    )

    # --- 3. the same file again: every row unchanged ---------------------------------------------------------------
    t_again, again = timed(lambda: import_patients(practice, data, file_name="patients.csv", actor="bench"))
    assert again.unchanged == args.n and not again.created and not again.updated, again.summary()

    # --- 3b. the same file with a share of the rows changed: those go through sync.update_from one by one -------
    lines = data.decode().splitlines(keepends=True)
    step = max(1, round(1 / CHANGED_SHARE))
    for i in range(1, len(lines), step):
        lines[i] = lines[i].replace(",Bench,", ",Bench-Changed,", 1)
    changed_data = "".join(lines).encode()
    t_changed, changed = timed(lambda: import_patients(practice, changed_data, file_name="patients.csv", actor="b"))
    assert changed.updated == len(range(1, len(lines), step)), changed.summary()

    # --- 4. raw: the same rows, read back, inserted with executemany into the same tables -------------------------
    tables = [ContactPoint, Patient, PatientContact, ConsentEvent, ContactConsent]
    source = {}
    with connection.cursor() as cur:
        for model in tables:
            columns = [f.column for f in model._meta.concrete_fields if f.column != "id" or model is Patient]
            where = "practice_id = %s"
            params = [practice.pk.hex]
            if model is PatientContact:
                where = f'patient_id IN (SELECT id FROM "{Patient._meta.db_table}" WHERE practice_id = %s)'
            cur.execute(f'SELECT {", ".join(columns)} FROM "{model._meta.db_table}" WHERE {where}', params)
            source[model] = (columns, cur.fetchall())
    rows_written = sum(len(rows) for _, rows in source.values())

    def raw(target):
        """The rows for another practice: new ids where the database gives them, the same values otherwise."""
        point_ids: dict[int, int] = {}
        patient_ids: dict[str, str] = {}
        event_ids: dict[int, int] = {}
        with transaction.atomic(), connection.cursor() as cur:
            for model in tables:
                columns, rows = source[model]
                table = model._meta.db_table
                sql = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join(["%s"] * len(columns))})'
                at = {c: i for i, c in enumerate(columns)}
                out = []
                for row in rows:
                    row = list(row)
                    if "practice_id" in at:
                        row[at["practice_id"]] = target.pk.hex
                    if model is Patient:
                        patient_ids[row[at["id"]]] = row[at["id"]] = uuid.uuid4().hex
                        if row[at["preferred_phone_id"]] is not None:
                            row[at["preferred_phone_id"]] = point_ids[row[at["preferred_phone_id"]]]
                    elif model is PatientContact:
                        row[at["patient_id"]] = patient_ids[row[at["patient_id"]]]
                        row[at["contact_point_id"]] = point_ids[row[at["contact_point_id"]]]
                    elif model is ConsentEvent:
                        row[at["hash"]] = row[at["hash"]][::-1]  # unique, as the chain's own
                    elif model is ContactConsent:
                        row[at["last_event_id"]] = event_ids[row[at["last_event_id"]]]
                    out.append(row)
                cur.executemany(sql, out)
                if model in (ContactPoint, ConsentEvent):  # their new ids, for the rows that name them
                    key = "address" if model is ContactPoint else "seq"
                    cur.execute(f'SELECT id, {key} FROM "{table}" WHERE practice_id = %s', [target.pk.hex])
                    new = dict((k, i) for i, k in cur.fetchall())
                    cur.execute(f'SELECT id, {key} FROM "{table}" WHERE practice_id = %s', [practice.pk.hex])
                    (point_ids if model is ContactPoint else event_ids).update((i, new[k]) for i, k in cur.fetchall())
        return len(out)

    t_raw = (float("inf"), 0.0)
    for _ in range(args.repeat):
        t, _n = timed(lambda: raw(new_practice()))
        t_raw = min(t_raw, t)

    # --- report -------------------------------------------------------------------------------------------------
    best = f"best of {args.repeat}" if args.repeat > 1 else "one run"
    counts = ", ".join(f"{len(rows):,} {model.__name__}" for model, (_, rows) in source.items())
    print(f"  rows written: {rows_written:,} ({counts})")
    print(f"\n{'':<46}{'wall':>9}{'CPU':>9}{'rows/s':>10}")
    for label, (wall, cpu) in [
        ("import: check only (read, parse, normalize)", t_check),
        ("import: import_patients(...), new patients", t_import),
        ("import again: every row unchanged", t_again),
        (f"import again: {changed.updated:,} rows changed", t_changed),
        ("raw: executemany of the rows, 1 transaction", t_raw),
    ]:
        print(f"  {label:<44}{wall:>8.2f}s{cpu:>8.2f}s{args.n / wall:>10,.0f}")
    wall, cpu = t_import
    verdict = "well under" if wall < TARGET_SECONDS / 2 else ("under" if wall < TARGET_SECONDS else "OVER")
    print(
        f"  ratio import/raw: {wall / t_raw[0]:.1f}x wall, {cpu / t_raw[1]:.1f}x CPU; {args.n:,} rows in "
        f"{wall:.1f} s ({cpu:.1f} s CPU), {verdict} the {TARGET_SECONDS:.0f} s target   [times: {best}]"
    )
    per_update = (t_changed[1] - t_again[1]) / max(changed.updated, 1) * 1e3
    print(f"  an existing patient changed (sync.update_from, one by one): about {per_update:.1f} ms CPU each")
    if cpu < wall * 0.8:
        print(f"  (the machine was busy: this process had the CPU {cpu / wall:.0%} of the time it took)")


if __name__ == "__main__":
    main()
