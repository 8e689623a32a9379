from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models

from consentry.bulk import execute
from consentry.crypto import EncryptedTextField
from consentry.patients.models import Practice


class InboundMessage(models.Model):
    """A text received from a phone; the provider's id makes a replayed webhook a no-op.

    A message id is unique only within one practice's account at one provider:
    the same id arriving at another practice is a different text, never a replay.

    The webhook stores the text and answers; the worker then reads it (its
    conversation, the consent change, the answer) and sets ``processed_at``.
    Until then a text that ``asks_to_stop`` already counts as the opt-out in
    every consent read (``consent.ledger.consent_state``).
    """

    # No index of its own: the unique constraint's begins with the practice (one index fewer to write per text).
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="inbound_messages", db_index=False)
    provider = models.CharField(max_length=20, default="twilio")
    provider_ref = models.CharField(max_length=64)
    from_number = models.CharField(max_length=20)
    to_number = models.CharField(max_length=20)
    body = EncryptedTextField(blank=True, default="")
    keyword = models.CharField(max_length=10)
    received_at = models.DateTimeField(auto_now_add=True)
    # A STOP (or, where the practice acts on replies at once, a reply that clearly asks to stop).
    asks_to_stop = models.BooleanField(default=False)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "provider", "provider_ref"], name="inbound_message_once")
        ]
        indexes = [
            # The texts not read yet: a handful at most, looked up by sender at every consent read.
            models.Index(
                fields=["practice", "from_number"],
                condition=models.Q(processed_at__isnull=True),
                name="inbound_unprocessed",
            )
        ]

    def insert(self, *, lock: int | None = None, only_if: tuple[str, list[Any]] | None = None) -> bool:
        """Store this new text in one ``INSERT``, each value prepared by its own field (encryption included); a
        replayed message id raises ``IntegrityError`` as ``save()`` would. ``received_at`` is the caller's
        (``auto_now_add`` sets it only in ``save()``, which compiles the statement anew at every call).

        Outside a transaction the statement is its own: on SQLite the write lock is held inside it alone (no
        ``RETURNING``, which would keep it until the row is fetched; the id is the last row's). ``only_if``, a
        condition and its values: nothing is stored (False) unless it holds when the row is written. ``lock``
        (PostgreSQL): the address's exclusive lock (``consent.address_lock.key``), taken inside the statement:
        first the lock (it waits for a hand-over to the number in flight), then ``received_at`` from the
        database's clock, then the row; the commit ends the lock. A STOP counts from after any hand-over it
        waited for, as in a transaction that takes the lock and then inserts, in one round trip where that took
        four."""
        if self.received_at is None:
            raise ValueError("received_at is set by the caller")
        db = connections[DEFAULT_DB_ALIAS]  # (once: each attribute of the ``connection`` proxy is a lookup)
        values = [
            getattr(self, name) if field is None else field.get_db_prep_save(getattr(self, name), db)
            for name, field in _VALUES
        ]
        if lock is not None:
            values[_FIELDS.index(_RECEIVED_AT)] = lock
        condition, more = only_if or ("", [])
        returning = _returning(db)
        with db.cursor() as cursor:
            execute(cursor, _insert_sql(db, _AFTER_LOCK if lock is not None else "%s", condition), values + more)
            if returning:
                row = cursor.fetchone()
                if row is None:
                    return False
                self.pk = row[0]
                if lock is not None:
                    self.received_at = row[1]
            elif cursor.rowcount == 0:
                return False
            else:
                self.pk = db.ops.last_insert_id(cursor, self._meta.db_table, self._meta.pk.column)
        self._state.adding = False
        return True


_FIELDS = [f for f in InboundMessage._meta.concrete_fields if not f.primary_key]
# Each column's attribute, and its field where the value needs the field's preparation (the practice's id, the
# encrypted body, the times: most of the insert's Python); None where it is stored as given (the str fields, the
# flag).
_VALUES = [
    (f.attname, None if isinstance(f, models.CharField | models.BooleanField) and not f.is_relation else f)
    for f in _FIELDS
]
_RECEIVED_AT = InboundMessage._meta.get_field("received_at")
# received_at's value in insert(lock=...): the clock once the lock is held (the scalar subquery is evaluated,
# lock first, before the row is made).
_AFTER_LOCK = "(SELECT clock_timestamp() FROM pg_advisory_xact_lock(%s))"
_INSERTS: dict[tuple[str, str, str], str] = {}  # the statements by database vendor, written once per process


def _returning(db: Any) -> bool:
    return bool(db.features.can_return_columns_from_insert) and db.vendor != "sqlite"


def _insert_sql(db: Any, received_at: str, condition: str) -> str:
    key = (db.vendor, received_at, condition)
    if (sql := _INSERTS.get(key)) is None:
        quote = db.ops.quote_name
        values = ", ".join(received_at if f is _RECEIVED_AT else "%s" for f in _FIELDS)
        sql = f"INSERT INTO {quote(InboundMessage._meta.db_table)} ({', '.join(quote(f.column) for f in _FIELDS)}) "
        sql += f"SELECT {values} WHERE {condition}" if condition else f"VALUES ({values})"
        if _returning(db):
            returned = [InboundMessage._meta.pk.column] + ([_RECEIVED_AT.column] if received_at != "%s" else [])
            sql += f" RETURNING {', '.join(quote(c) for c in returned)}"
        _INSERTS[key] = sql
    return sql
