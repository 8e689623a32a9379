"""Benchmark ``consentry.consent.rules.decide()`` alone: no database, no Django.

Builds a seeded mix of recipients (see ``_setup.population``) and a
``ConsentState`` with SMS opt-outs, email unsubscribes and bounces and blocks,
then times ``--n`` decisions per send kind (automation, broadcast, manual,
notification) with ``time.perf_counter``.

Next to each figure is a baseline measured in the same run, on the same
recipients: a function with ``decide()``'s signature that builds exactly the
``Planned`` entries and the ``Decision`` that ``decide()`` returned for that
recipient, and nothing else. ``ratio`` = decide time / baseline time, i.e.
how many times the cost of merely allocating the answer the rules cost.
The figures are the best of ``--repeat`` runs (like ``timeit``).

    .venv/bin/python bench/decide.py [--n 100000] [--recipients 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup  # noqa: E402  (also puts src/ on the path as a fallback)

from consentry.consent.rules import (
    AUTOMATED_KINDS,
    QUIET_HOURS_KINDS,
    ConsentState,
    Decision,
    FrequencyCap,
    Phone,
    Planned,
    Recipient,
    SendRequest,
    SendWindow,
    builtin_category,  # noqa: E402
    decide,
)
from consentry.vocabulary import Channel, Kind, LineType, MarketingConsent, Status

category = builtin_category


# One realistic, transactional request per kind (a marketing category would
# mostly short-circuit on PMS marketing consent, which flatters the figures).
REQUESTS = {
    Kind.AUTOMATION: SendRequest(
        Kind.AUTOMATION, category("recall"), frozenset({Channel.SMS, Channel.VOICE, Channel.EMAIL})
    ),
    Kind.BROADCAST: SendRequest(
        Kind.BROADCAST, category("recall"), frozenset({Channel.SMS, Channel.VOICE, Channel.EMAIL})
    ),
    Kind.MANUAL: SendRequest(Kind.MANUAL, category("payment_due"), frozenset({Channel.SMS, Channel.EMAIL})),
    Kind.NOTIFICATION: SendRequest(
        Kind.NOTIFICATION, category("appointment_reminder"), frozenset({Channel.SMS, Channel.EMAIL, Channel.IN_APP})
    ),
}


def with_rules(request: SendRequest, quiet_hours: bool, caps: bool) -> SendRequest:
    """The request as a practice sends it: quiet hours (the default window, 08:00-21:00, in New York)
    for the kinds that keep them, and frequency caps (the default 1 a day, 3 a week) for automated kinds."""
    return replace(
        request,
        window=SendWindow() if quiet_hours and request.kind in QUIET_HOURS_KINDS else None,
        default_timezone="America/New_York",
        frequency_cap=FrequencyCap() if caps and request.kind in AUTOMATED_KINDS else None,
    )


def recent_sends(pop: _setup.Population) -> dict[str, tuple[int, int]]:
    """Automated calls and texts already sent this week: one to every fourth number, two to every tenth."""
    numbers = sorted(pop.phones)
    sends = {number: (0, 1) for number in numbers[::4]}
    sends.update({number: (1, 2) for number in numbers[::10]})
    return sends


def to_recipients(pop: _setup.Population) -> list[Recipient]:
    out = []
    for p in pop.patients:
        overrides = {
            (key, Channel(ch)): bool(on) for key, chans in p.notification_overrides.items() for ch, on in chans.items()
        }
        out.append(
            Recipient(
                patient_id=f"patient-{p.index}",
                phones=tuple(Phone(ph.number, LineType(ph.line_type), ph.valid) for ph in p.phones),
                emails=tuple(p.emails),
                preferred_phone=p.preferred_phone,
                do_not_contact=p.do_not_contact,
                marketing_consent=MarketingConsent(p.marketing_consent),
                channel_opt_outs=frozenset(Channel(c) for c in p.channel_opt_outs),
                notification_overrides=overrides,
            )
        )
    return out


def to_state(c: _setup.ConsentSpec, recent: dict[str, tuple[int, int]] | None = None) -> ConsentState:
    return ConsentState(
        sms_opted_out=frozenset(c.sms_opted_out),
        email_unsubscribed=frozenset(c.email_unsubscribed),
        email_bounced=frozenset(c.email_bounced),
        blocks={number: frozenset(cats) for number, cats in c.blocks.items()},
        recent_sends=recent or {},
    )


def baseline(request, recipient, state, now, count):
    """What every decision costs at least: one call, ``count`` Planned entries, one Decision."""
    if count == 1:
        planned = (Planned(Channel.SMS, "x", Status.PENDING),)
    elif count == 2:
        planned = (Planned(Channel.SMS, "x", Status.SKIPPED, None), Planned(Channel.VOICE, "x", Status.PENDING))
    elif count == 3:
        planned = (
            Planned(Channel.SMS, "x", Status.SKIPPED, None),
            Planned(Channel.VOICE, "x", Status.SKIPPED, None),
            Planned(Channel.EMAIL, "x", Status.PENDING),
        )
    elif count == 0:
        planned = ()
    else:
        planned = tuple(Planned(Channel.SMS, "x", Status.PENDING) for _ in range(count))
    return Decision(recipient.patient_id, planned, ())


def time_decide(request, calls, state, now) -> float:
    t = time.perf_counter()
    for r in calls:
        decide(request, r, state, now)
    return time.perf_counter() - t


def time_baseline(request, calls, counts, state, now) -> float:
    t = time.perf_counter()
    for r, c in zip(calls, counts, strict=True):
        baseline(request, r, state, now, c)
    return time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="decisions timed per kind (default 100,000)")
    ap.add_argument("--recipients", type=int, default=5000, help="distinct recipients, cycled (default 5,000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is kept (default 5)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--no-quiet-hours", action="store_true", help="no send window (on by default: 08:00-21:00)")
    ap.add_argument("--no-caps", action="store_true", help="no frequency caps (on by default: 1 a day, 3 a week)")
    args = ap.parse_args(argv)

    pop = _setup.population(args.recipients, args.seed)
    recipients = to_recipients(pop)
    caps, quiet_hours = not args.no_caps, not args.no_quiet_hours
    state = to_state(pop.consent, recent_sends(pop) if caps else None)
    # At 23:30 in New York: outside the window, so quiet hours defer what would go.
    now = datetime(2026, 3, 11, 3, 30, tzinfo=UTC)
    requests = {kind: with_rules(request, quiet_hours, caps) for kind, request in REQUESTS.items()}
    calls = (recipients * (args.n // len(recipients) + 1))[: args.n]

    print(f"decide() benchmark, Python {sys.version.split()[0]}")
    print(f"population: {_setup.describe(pop)}")
    print(f"{args.n:,} decisions per kind over {len(recipients):,} recipients, best of {args.repeat}")
    print(
        f"quiet hours {'on (08:00-21:00, now 23:30 in New York)' if quiet_hours else 'off'}, "
        f"frequency caps {'on (1 a day, 3 a week; automation, broadcast, notification)' if caps else 'off'}\n"
    )

    header = f"{'kind':<13}{'decide/s':>12}{'µs/call':>9}{'baseline/s':>13}{'ratio':>7}  {'planned/dec':>11}  outcome mix (channels sent, or why none)"
    print(header)
    print("-" * len(header))
    total_decide = total_base = 0.0
    for kind, request in requests.items():
        # What decide() returns for each call: its Planned count for the baseline, and the mix.
        decisions = [decide(request, r, state, now) for r in recipients]
        per_recipient = [len(d.deliveries) for d in decisions]
        counts = (per_recipient * (args.n // len(recipients) + 1))[: args.n]
        mix = Counter("+".join(p.channel for p in d.sends) if d.sends else f"none:{d.reason}" for d in decisions)
        gc.collect()
        gc.disable()
        try:
            best_d = best_b = float("inf")
            for _ in range(args.repeat):  # interleaved, so drift in machine speed hits both alike
                best_d = min(best_d, time_decide(request, calls, state, now))
                best_b = min(best_b, time_baseline(request, calls, counts, state, now))
        finally:
            gc.enable()
        total_decide += best_d
        total_base += best_b
        top = ", ".join(f"{k} {v / len(decisions):.0%}" for k, v in mix.most_common(4))
        print(
            f"{kind.value:<13}{args.n / best_d:>12,.0f}{best_d / args.n * 1e6:>9.2f}{args.n / best_b:>13,.0f}"
            f"{best_d / best_b:>7.2f}  {sum(per_recipient) / len(per_recipient):>11.2f}  {top}"
        )
    n_all = args.n * len(REQUESTS)
    print("-" * len(header))
    print(
        f"{'overall':<13}{n_all / total_decide:>12,.0f}{total_decide / n_all * 1e6:>9.2f}{n_all / total_base:>13,.0f}"
        f"{total_decide / total_base:>7.2f}"
    )
    print(
        "\nratio = decide() time / baseline time; baseline = a call with the same arguments that only"
        "\nbuilds the same number of Planned entries and one Decision (the unavoidable allocation)."
    )


if __name__ == "__main__":
    main()
