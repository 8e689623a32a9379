"""Consent changes that arrive at the same moment, against a running service.

Two STOPs from one phone a few milliseconds apart (a double tap, a carrier
re-sending under another message id) must record one opt-out and send one
confirmation: the state a change depends on is read under the ledger's lock,
on PostgreSQL (concurrent READ COMMITTED transactions) as on SQLite.
"""

from __future__ import annotations

import threading
import urllib.parse

import pytest

pytestmark = pytest.mark.e2e

THREADS = 8


def _at_once(action) -> list:
    """``action(i)`` in THREADS threads released together; what each returned, or the exception it raised."""
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS

    def run(i):
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as exc:  # kept for the assertion, which shows it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def _history(service, address):
    status, body = service.api("GET", f"/contacts/history?address={urllib.parse.quote(address)}")
    assert status == 200, body
    return body["events"]


@pytest.mark.parametrize("round_", range(3))
def test_the_same_stop_arriving_at_once_records_one_opt_out_and_sends_one_confirmation(service, round_):
    phone = f"+1415555310{round_}"
    # A phone that has texted before: its conversation exists, so nothing else serializes the STOPs.
    assert service.text_in(phone, "Thanks, see you Monday", f"SMhello{round_}")[0] == 200
    statuses = _at_once(lambda i: service.text_in(phone, "STOP", f"SMrace{round_}x{i}")[0])
    assert statuses == [200] * THREADS
    service.read_all()  # the embedded worker reads the eight stored STOPs
    assert [(e["state"], e["source"]) for e in _history(service, phone)] == [("opted_out", "sms_keyword")]
    # Wait long enough for a second confirmation to show, were there one.
    assert len(service.wait_outbox(phone, 2, timeout=3)) == 1


def test_staff_opt_outs_of_one_address_at_once_record_one_change(service):
    for address in ("+14155553199", "ava.race@example.com"):
        answers = _at_once(
            lambda i, a=address: service.api("POST", "/contacts/opt-out", {"address": a, "reason": f"asked, #{i}"})
        )
        assert [status for status, _ in answers] == [200] * THREADS, answers
        assert sorted(body["changed"] for _, body in answers) == [False] * (THREADS - 1) + [True]
        assert len(_history(service, address)) == 1
