"""One lock per address at a practice, between consent changes and the hand-overs to providers.

The promise "nobody who said no is messaged" needs more than a check before
sending: an opt-out that commits between the check and the hand-over would
lose the race. So a hand-over holds the address's lock shared from its check
until the provider has the message, and a consent change holds it exclusively
from before it reads the address's state until it commits. Either the
hand-over's check sees the opt-out, or the opt-out waits for the hand-over to
end (and its ledger time is after it).

PostgreSQL: advisory locks keyed by (practice, address). SQLite: a write
transaction has the database to itself, which already orders a change and
the check-and-take of a hand-over; a change that commits while a provider
call is in flight, a few milliseconds after the take, cannot recall it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connection

from .rules import PracticeId


def key(practice_id: PracticeId, address: str) -> int:
    """A signed 64-bit key for the address at the practice (two addresses may share one: they then wait for each
    other, which is only slower)."""
    digest = hashlib.blake2b(f"{practice_id}\x00{address}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def taken() -> bool:
    """Whether these locks are taken at all (PostgreSQL); on SQLite a write transaction stands for them."""
    return _postgres()


def for_change(practice_id: PracticeId, address: str) -> None:
    """Hold the address exclusively until the current transaction ends (a consent change is about to read it);
    on PostgreSQL (``taken()``) this may wait for hand-overs to it in flight."""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key(practice_id, address)])


def for_handovers(pairs: Iterable[tuple[PracticeId, str]]) -> None:
    """Hold these addresses shared until the current transaction ends (a batch checked and stored in it)."""
    if not _postgres():
        return
    keys = sorted({key(practice_id, address) for practice_id, address in pairs if address})
    if keys:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_advisory_xact_lock_shared(k)) FROM unnest(%s::bigint[]) AS k", [keys])


@contextmanager
def handing_over(practice_id: PracticeId, address: str) -> Iterator[None]:
    """Hold the address shared across transactions, from the check until the provider call has returned.

    A session lock: the take commits inside it (so a killed worker's hand-over
    is never taken for one that did not happen), and it ends with the
    connection if the process dies.
    """
    if not _postgres() or not address:
        yield
        return
    lock = key(practice_id, address)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock_shared(%s)", [lock])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_shared(%s)", [lock])
