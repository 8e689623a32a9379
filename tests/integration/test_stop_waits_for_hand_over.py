"""On PostgreSQL a received STOP is stored in one statement that takes its address's exclusive lock first
(``InboundMessage.insert(lock=...)``): a hand-over to that number in flight (which holds the lock shared until
the provider has the message) ends before it, and the STOP counts from after it, by the database's clock.

The hand-over here is a second connection holding the address's shared lock, as ``address_lock.handing_over``
does in a worker."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection

from consentry.consent import address_lock, ledger
from consentry.keywords.models import InboundMessage
from tests.conftest import only_on_postgresql

pytestmark = [
    pytest.mark.django_db,
    only_on_postgresql(
        "the address locks are PostgreSQL's (on SQLite the write lock orders a STOP and a hand-over's check-and-take)"
    ),
]

PHONE = "+14155550111"
HELD = 0.5  # seconds the hand-over holds the address


def _other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=True,
    )


def _stop(practice, sid: str) -> InboundMessage:
    return InboundMessage(
        practice_id=practice.pk,
        provider="twilio",
        provider_ref=sid,
        from_number=PHONE,
        to_number=practice.texting_number,
        body="STOP",
        keyword="opt_out",
        asks_to_stop=True,
        received_at=datetime.now(UTC),
    )


def test_a_stop_waits_for_a_hand_over_in_flight_and_counts_from_after_it(practice):
    key = address_lock.key(practice.pk, PHONE)
    released: list[datetime] = []
    with _other_connection() as hand_over:
        hand_over.execute("SELECT pg_advisory_lock_shared(%s)", [key])

        def provider_answers():
            time.sleep(HELD)
            released.append(hand_over.execute("SELECT clock_timestamp()").fetchone()[0])
            hand_over.execute("SELECT pg_advisory_unlock_shared(%s)", [key])

        thread = threading.Thread(target=provider_answers)
        started = time.monotonic()
        thread.start()
        stop = _stop(practice, "SM1")
        stop.insert(lock=key)
        waited = time.monotonic() - started
        thread.join()
    assert waited >= HELD * 0.9, f"the STOP did not wait for the hand-over ({waited:.3f} s)"
    assert stop.received_at >= released[0]
    stored = InboundMessage.objects.get(pk=stop.pk)
    assert (stored.received_at, stored.asks_to_stop, stored.processed_at) == (stop.received_at, True, None)
    assert stored.body == "STOP"  # encrypted at rest, as every insert stores it
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out


def test_another_numbers_hand_over_does_not_hold_it(practice):
    with _other_connection() as hand_over:
        hand_over.execute("SELECT pg_advisory_lock_shared(%s)", [address_lock.key(practice.pk, "+14155550999")])
        started = time.monotonic()
        _stop(practice, "SM2").insert(lock=address_lock.key(practice.pk, PHONE))
        assert time.monotonic() - started < HELD
    assert InboundMessage.objects.filter(provider_ref="SM2").exists()


def test_a_replay_is_refused_by_the_same_statement(practice):
    from django.db import IntegrityError, transaction

    key = address_lock.key(practice.pk, PHONE)
    _stop(practice, "SM3").insert(lock=key)
    with pytest.raises(IntegrityError), transaction.atomic():
        _stop(practice, "SM3").insert(lock=key)
    assert InboundMessage.objects.filter(provider_ref="SM3").count() == 1
