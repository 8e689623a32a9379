"""The opt-out instruction ("Reply STOP to opt out.") at the end of automated and broadcast texts.

CTIA's Messaging Principles and the carriers' 10DLC rules expect a program's first text to a number to
say how to stop, and to say it again from time to time; marketing texts say it every time. A practice
chooses (``Practice.opt_out_hint``):

- ``first`` (the default): the first automated, broadcast or notification text to a number in 30 days
  carries it, and every text of a marketing category;
- ``always``: every such text carries it;
- ``never``: none does (the practice's own texts already say it).

The practice's wording is ``Practice.opt_out_hint_text`` (e.g. Spanish). It ends the text after a space
(a text that already holds those words is left as it is: ``templating.sms_text``), and counts towards the
text's length when the content is checked (``suffix()``). Staff texts, replies in
a conversation and keyword confirmations never carry it: a person is writing to a person, or answering
the keyword.

Whether a text is a number's first is decided when it is handed over, for a whole dispatch chunk with one
query (``Hints.load()``): no automated text handed to the provider (sent, delivered or undelivered) from
the same practice to that number in the last 30 days. Within one dispatch task, the first text to a number
carries it and the next ones do not (a family's shared phone getting two texts of one broadcast); two workers
handing over texts to one number at the same instant may both add it, which errs on the side of saying it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection

from consentry.consent.rules import AUTOMATED_KINDS
from consentry.patients.models import OptOutHint, Practice
from consentry.vocabulary import Channel, Status

from .models import Delivery, Message

WINDOW = timedelta(days=30)
SEPARATOR = " "
# Texts the provider took: what the person may have read.
HANDED_OVER = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
_KINDS = tuple(sorted(k.value for k in AUTOMATED_KINDS))


def may_add(practice: Practice, kind: str) -> bool:
    """Whether a text of this kind from this practice may end with the hint."""
    return kind in AUTOMATED_KINDS and practice.opt_out_hint != OptOutHint.NEVER


def suffix(practice: Practice, kind: str) -> str:
    """What may end a text of this kind, as the content's length check counts it ("" when nothing may)."""
    return SEPARATOR + practice.opt_out_hint_text if may_add(practice, kind) else ""


def preview_hint(practice: Practice, kind: str) -> str:
    """The hint a preview shows at the end of a text of this kind: the one a number's first text gets."""
    return practice.opt_out_hint_text if may_add(practice, kind) else ""


class Hints:
    """Which texts of a dispatch end with the hint: the recent texts of each chunk's numbers are read
    once (``load``), then each text is decided in memory (``hint_for``)."""

    def __init__(self) -> None:
        self.recent: set[tuple] = set()  # (practice id, number) with an automated text in the window
        self.given: set[tuple] = set()  # (practice id, number) whose text in this dispatch carries it

    def load(self, deliveries: Iterable, now: datetime) -> None:
        """One query for the chunk's numbers whose first text in the window it may be."""
        wanted = {
            (d.practice_id, d.address)
            for d in deliveries
            if d.channel == Channel.SMS
            and d.practice.opt_out_hint == OptOutHint.FIRST
            and d.message.kind in AUTOMATED_KINDS
            and (d.practice_id, d.address) not in self.given
        }
        if not wanted:
            return
        practices = sorted({p for p, _ in wanted}, key=str)
        numbers = sorted({a for _, a in wanted})
        to_db = (lambda v: v) if connection.features.has_native_uuid_field else (lambda v: v.hex)
        since = connection.ops.adapt_datetimefield_value(now - WINDOW)
        sql = f"""
            SELECT DISTINCT d.practice_id, d.address
            FROM {Delivery._meta.db_table} d JOIN {Message._meta.db_table} m ON m.id = d.message_id
            WHERE d.practice_id IN ({_marks(practices)}) AND d.address IN ({_marks(numbers)})
              AND d.channel = %s AND d.status IN ({_marks(HANDED_OVER)}) AND d.sent_at > %s
              AND m.kind IN ({_marks(_KINDS)})
        """
        params = [*(to_db(p) for p in practices), *numbers, Channel.SMS.value, *HANDED_OVER, since, *_KINDS]
        by_db_id = {to_db(p): p for p in practices}  # as read back: UUIDs, or their hex on SQLite
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = {(by_db_id[practice_id], address) for practice_id, address in cursor.fetchall()}
        self.recent |= found & wanted

    def hint_for(self, delivery, *, marketing: bool) -> str:
        """The hint this text ends with, or "". A text given the hint counts as the number's first."""
        practice = delivery.practice
        if delivery.channel != Channel.SMS or not may_add(practice, delivery.message.kind):
            return ""
        key = (delivery.practice_id, delivery.address)
        if practice.opt_out_hint == OptOutHint.FIRST and not marketing:
            if key in self.recent or key in self.given:
                return ""
        self.given.add(key)
        return practice.opt_out_hint_text


def _marks(values) -> str:
    return ", ".join(["%s"] * len(values))
