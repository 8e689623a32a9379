"""Benchmark the staff app's two screens that grow with a practice: the patient search and the
broadcast recipient preview.

On a fresh temporary SQLite database (or the PostgreSQL server of ``--database-url``) this seeds one
practice with ``--n`` patients (default 100,000; the benchmarks' synthetic population: families
sharing a phone, landlines, opt-outs, blocks) and a signed-in staff user, then times, through
Django's test client and the real views (sessions, templates and all):

1. ``GET /patients/?q=...`` for a first name, a phone in another format, an email, an external id,
   and the first page with no query; the goal is a page well under a second;
2. ``POST /broadcasts/new`` previewing a broadcast to every patient of a ``--preview-n`` practice
   (default 50,000); the goal is a few seconds.

Each is the median of ``--repeat`` runs (default 5), beside a baseline run the same way: for the
search, the same page read with one raw SQL query; for the preview, ``decide()`` alone over the same
recipients already in memory (the engine's share of the work).

    .venv/bin/python bench/staff_screens.py [--n 100000] [--preview-n 50000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup  # noqa: E402

SEARCH_GOAL_S = 0.5
PREVIEW_GOAL_S = 5.0


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def seed(name: str, number: str, n: int, seed_value: int):
    from consentry.consent import ledger
    from consentry.consent.models import Subject
    from consentry.patients.practices import create_practice

    pop = _setup.population(n, seed_value)
    practice, _ = create_practice(name=name, texting_number=number, send_window=(clock_time(0, 0), clock_time(0, 0)))
    ids = _setup.seed_patients(practice, pop)
    c = pop.consent
    for subject, addresses, state in (
        (Subject.SMS, c.sms_opted_out, "opted_out"),
        (Subject.EMAIL, c.email_unsubscribed, "unsubscribed"),
    ):
        for address in addresses:
            ledger.record(practice=practice, subject=subject, address=address, state=state, source="import", actor="b")
    return practice, ids, pop


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--preview-n", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    _setup.django_on_temp_sqlite("consentry-staff-bench-")

    from django.db import connection
    from django.test import Client

    from consentry.accounts.services import create_staff
    from consentry.consent.rules import decide
    from consentry.messaging import recipients
    from consentry.messaging.planning import _request
    from consentry.patients.models import Patient

    print(f"staff screens benchmark, Python {sys.version.split()[0]}, {connection.vendor}")
    t0 = time.perf_counter()
    big, big_ids, pop = seed("Bench Search", "+12025550100", args.n, args.seed)
    print(f"seeded {len(big_ids):,} patients for the search in {time.perf_counter() - t0:.1f} s")
    user = create_staff(practice=big, email="bench@example.org", role="admin", password="bench-passphrase-1").user
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")

    sample = pop.patients[len(pop.patients) // 2]
    phone = sample.phones[0].number if sample.phones else next(iter(pop.phones))
    national = f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"
    email = sample.emails[0] if sample.emails else pop.emails[0]
    queries = {
        "first page": "",
        "first name": sample.first_name,
        "phone (national format)": national,
        "email": email.upper(),
        "external id": f"pms-{sample.index}",
    }
    table = Patient._meta.db_table
    practice_id = big.pk.hex if connection.vendor == "sqlite" else big.pk

    def raw_page():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, first_name, last_name, external_id FROM {table} WHERE practice_id = %s "
                "ORDER BY last_name, first_name, id LIMIT 51",
                [practice_id],
            )
            cursor.fetchall()

    baseline = median_time(raw_page, args.repeat)
    print(f"\n1. patient search, {len(big_ids):,} patients (median of {args.repeat})")
    print(f"   baseline: one raw query for the first page          {baseline * 1e3:8.1f} ms")
    worst = 0.0
    for label, q in queries.items():

        def page(q=q, label=label):
            answer = client.get("/patients/", {"q": q})
            assert answer.status_code == 200 and b"Page 1" in answer.content, (label, answer.status_code)

        took = median_time(page, args.repeat)
        worst = max(worst, took)
        print(f"   GET /patients/?q=  {label:<28} {took * 1e3:8.1f} ms  ({took / baseline:5.1f}x baseline)")
    verdict = "meets" if worst <= SEARCH_GOAL_S else "MISSES"
    print(f"   slowest page {worst * 1e3:.0f} ms: {verdict} the {SEARCH_GOAL_S * 1e3:.0f} ms goal")

    t0 = time.perf_counter()
    mid, mid_ids, _ = seed("Bench Broadcast", "+12025550101", args.preview_n, args.seed + 1)
    print(f"\nseeded {len(mid_ids):,} patients for the preview in {time.perf_counter() - t0:.1f} s")
    create_staff(practice=mid, email="bench@example.org", role="admin")
    client.post("/account/practice", {"practice": str(mid.pk)})
    form = {"category": "announcement", "audience": "all", "sms": "Hi {{first_name}}, flu shots are in.",
            "email_subject": "Flu shots", "email_text": "Flu shots are in.", "action": "preview"}  # fmt: skip
    content = {"sms": form["sms"], "email": {"subject": form["email_subject"], "text": form["email_text"]}}
    request, _ = _request(mid, "broadcast", "announcement", content)
    state = recipients.practice_consent(mid.pk)
    to_db = recipients.db_id_function()
    loaded = []
    for start in range(0, len(mid_ids), 2000):
        chunk = [to_db(uuid.UUID(i)) for i in mid_ids[start : start + 2000]]
        loaded += recipients.load_chunk(chunk, "announcement")
    now = datetime.now(UTC)

    def engine_only():
        for recipient in loaded:
            decide(request, recipient, state, now)

    def preview():
        answer = client.post("/broadcasts/new", form)
        assert answer.status_code == 200 and f"<strong>{len(mid_ids)}</strong>".encode() in answer.content

    repeat = max(1, min(args.repeat, 3))
    base = median_time(engine_only, repeat)
    took = median_time(preview, repeat)
    print(f"2. broadcast recipient preview, {len(mid_ids):,} patients (median of {repeat})")
    print(f"   baseline: decide() alone over loaded recipients      {base:8.2f} s")
    print(f"   POST /broadcasts/new (preview)                       {took:8.2f} s  ({took / base:5.1f}x baseline)")
    verdict = "meets" if took <= PREVIEW_GOAL_S else "MISSES"
    print(f"   {verdict} the {PREVIEW_GOAL_S:.0f} s goal")


if __name__ == "__main__":
    main()
