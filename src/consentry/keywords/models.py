from typing import Any

from django.db import connection, models

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

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="inbound_messages")
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

    def insert_statement(self) -> tuple[str, list[Any]]:
        """The ``INSERT`` that stores this new text, and its values, each prepared by its own field (encryption
        included): made before the caller's transaction, so the write lock is held for the statement alone.

        ``received_at`` is the caller's (``auto_now_add`` sets it only in ``save()``). The webhook's one
        write: ``save()`` compiles the statement anew at every call, which cost about as much as the rest of
        the webhook.
        """
        if self.received_at is None:
            raise ValueError("received_at is set by the caller")
        return _insert_sql(), [f.get_db_prep_save(getattr(self, f.attname), connection) for f in _FIELDS]

    def insert(self, statement: tuple[str, list[Any]]) -> None:
        """Run ``insert_statement()``; a replayed message id raises ``IntegrityError`` as ``save()`` would."""
        sql, values = statement
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            if connection.features.can_return_columns_from_insert:
                self.pk = cursor.fetchone()[0]
            else:
                self.pk = connection.ops.last_insert_id(cursor, self._meta.db_table, self._meta.pk.column)
        self._state.adding = False

    def insert_behind_lock(self, lock: int) -> None:
        """PostgreSQL, outside any transaction: the insert, in one statement that is its own transaction, with
        the address's exclusive lock (``consent.address_lock.key``) taken inside it: first the lock (it waits
        for a hand-over to the number in flight), then ``received_at`` from the database's clock, then the row;
        the commit ends the lock. A STOP counts from after any hand-over it waited for, as in a transaction that
        takes the lock and then inserts, in one round trip where that took four."""
        _, values = self.insert_statement()
        values[_FIELDS.index(_RECEIVED_AT)] = lock
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(received_at=_AFTER_LOCK), values)
            self.pk, self.received_at = cursor.fetchone()
        self._state.adding = False


_FIELDS = [f for f in InboundMessage._meta.concrete_fields if not f.primary_key]
_RECEIVED_AT = InboundMessage._meta.get_field("received_at")
# received_at's value in insert_behind_lock(): the clock once the lock is held (the scalar subquery is evaluated,
# lock first, before the row is made).
_AFTER_LOCK = "(SELECT clock_timestamp() FROM pg_advisory_xact_lock(%s))"
_INSERTS: dict[tuple[str, str], str] = {}  # the statements by database vendor, written once per process


def _insert_sql(received_at: str = "%s") -> str:
    key = (connection.vendor, received_at)
    if (sql := _INSERTS.get(key)) is None:
        quote = connection.ops.quote_name
        values = ", ".join(received_at if f is _RECEIVED_AT else "%s" for f in _FIELDS)
        sql = f"INSERT INTO {quote(InboundMessage._meta.db_table)} ({', '.join(quote(f.column) for f in _FIELDS)}) "
        sql += f"VALUES ({values})"
        if connection.features.can_return_columns_from_insert:
            returned = [InboundMessage._meta.pk.column] + ([_RECEIVED_AT.column] if received_at != "%s" else [])
            sql += f" RETURNING {', '.join(quote(c) for c in returned)}"
        _INSERTS[key] = sql
    return sql
