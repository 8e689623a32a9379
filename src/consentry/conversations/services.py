"""Conversations: every text in and out of a phone, possible opt-outs flagged, staff replies and opt-outs.

A conversation belongs to a (practice, phone) pair, so every patient who has
that phone (a family) shares it. Bodies are encrypted at rest.

Consent changes appear as system lines. Those recorded here or by inbound
texts (STOP, START, a reply opted out under the "auto" policy, a staff
opt-out) are stored with the conversation; an opt-out recorded elsewhere (the
carrier's error 21610, an import) is shown from the ledger when the
conversation is read, so an opted-out number always carries its line.

The possible-opt-out flag is raised under the "flag" policy and cleared when
staff confirm the opt-out or the patient texts an explicit STOP or START.
Under the "auto" policy the opt-out is recorded at once and the flag is never
raised: the system line (with the rule that matched) and the ledger say what
happened.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery

from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, SmsState, Source, Subject
from consentry.consent.rules import address_block_reason
from consentry.errors import InvalidInput
from consentry.events import emit
from consentry.keywords.models import InboundMessage
from consentry.messaging.categories import category_for
from consentry.messaging.content import MAX_SMS_CHARS
from consentry.messaging.direct import create_direct_message
from consentry.messaging.models import Delivery
from consentry.messaging.templating import sms_prefix
from consentry.patients.models import PatientContact, Practice
from consentry.vocabulary import Channel, Kind, Reason

from .models import Conversation, ConversationEntry, Direction, Flag

# Staff replies are filed under the built-in "system" category, like keyword
# replies: a Blocked Communications entry for it stops them too.
REPLY_CATEGORY = "system"
PREVIEW_CHARS = 80


class ReplyRefused(Exception):
    """A staff text that the number's consent forbids. Nothing was written or sent."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- writing ---------------------------------------------------------------


def conversation_for(practice: Practice, phone: str) -> Conversation:
    conversation, _ = Conversation.objects.get_or_create(practice=practice, phone=phone)
    return conversation


def append(
    conversation: Conversation,
    direction: Direction,
    body: str,
    *,
    inbound_message: InboundMessage | None = None,
    delivery: Delivery | None = None,
    consent_event: ConsentEvent | None = None,
    author: str = "",
    activity: bool = True,
) -> ConversationEntry:
    """Add an entry; ``activity=False`` for a note that must not move the conversation up the inbox."""
    now = datetime.now(UTC)
    entry = ConversationEntry.objects.create(
        conversation=conversation,
        direction=direction,
        body=body,
        inbound_message=inbound_message,
        delivery=delivery,
        consent_event=consent_event,
        author=author,
        created_at=now,
    )
    if activity:
        Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=now)
        conversation.last_activity_at = now
    return entry


@dataclass
class Thread:
    """A conversation being written by one received text: its entries are collected and written together
    (``save()``), in the order they were added."""

    conversation: Conversation
    entries: list[ConversationEntry] = field(default_factory=list)

    def add(self, direction: Direction, body: str, at: datetime | None = None, **links) -> None:
        """An entry at ``at`` (a text's arrival), else now."""
        created_at = at or datetime.now(UTC)
        self.entries.append(
            ConversationEntry(
                conversation=self.conversation, direction=direction, body=body, created_at=created_at, **links
            )
        )

    def note_consent_change(self, event: ConsentEvent | None) -> None:
        if event is not None:
            self.add(Direction.SYSTEM, consent_line(event), consent_event=event)

    def save(self) -> None:
        ConversationEntry.objects.bulk_create(self.entries)


def _touched(practice: Practice, phone: str, now: datetime, clear_flag: bool) -> Conversation:
    """The (practice, phone) conversation, created if new, its last activity set to ``now`` and its flag
    cleared if asked: one statement (INSERT ... ON CONFLICT DO UPDATE ... RETURNING), whichever it was."""
    meta = Conversation._meta
    cleared = ", flag = '', flag_rule = '', flagged_at = NULL" if clear_flag else ""
    values = [
        meta.pk.get_db_prep_value(uuid.uuid4(), connection),
        meta.get_field("practice").get_db_prep_value(practice.pk, connection),
        phone,
        meta.get_field("last_activity_at").get_db_prep_value(now, connection),
        meta.get_field("created_at").get_db_prep_value(now, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {meta.db_table} (id, practice_id, phone, flag, flag_rule, last_activity_at, created_at)"
            " VALUES (%s, %s, %s, '', '', %s, %s) ON CONFLICT (practice_id, phone)"
            f" DO UPDATE SET last_activity_at = EXCLUDED.last_activity_at{cleared} RETURNING id",
            values,
        )
        (pk,) = cursor.fetchone()
    known = {"id": pk if isinstance(pk, uuid.UUID) else uuid.UUID(pk), "practice_id": practice.pk, "phone": phone}
    known["last_activity_at"] = now
    if clear_flag:
        known.update(flag="", flag_rule="", flagged_at=None)
    # What was not written here (an earlier flag, the creation time) is read only if asked for.
    names = [f.attname for f in meta.concrete_fields if f.attname in known]
    conversation = Conversation.from_db(connection.alias, names, [known[name] for name in names])
    conversation.practice = practice
    return conversation


def record_inbound(practice: Practice, number: str, inbound: InboundMessage, *, clear_flag: bool = False) -> Thread:
    """File a received text in its conversation (started on the first text) and tell the practice's
    webhooks; the thread's entries are written by its ``save()``. ``clear_flag``: the text settles an
    earlier possible opt-out (an explicit STOP or START)."""
    thread = Thread(_touched(practice, number, inbound.received_at, clear_flag))
    thread.add(Direction.INBOUND, inbound.body, at=inbound.received_at, inbound_message=inbound)
    emit.message_received(thread.conversation, inbound)
    return thread


def consent_line(event: ConsentEvent) -> str:
    """The system line that reports an SMS consent change in a conversation."""
    if event.state == SmsState.OPTED_IN:
        keyword = event.evidence.get("keyword") or "START"
        return f"The patient opted back in to texts from this practice (texted {keyword})."
    if event.source == Source.SMS_KEYWORD:
        how = f"texted {event.evidence.get('keyword') or 'STOP'}"
    elif event.source == Source.SMS_REPLY:
        rule = event.evidence.get("rule") or "unnamed rule"
        how = f"a reply asked to stop (rule: {rule}); the practice's policy opts such replies out at once"
    elif event.source == Source.STAFF:
        how = f"recorded by staff on request ({event.actor})"
    elif event.source == Source.CARRIER:
        how = f"the carrier reported an opt-out (error {event.evidence.get('error_code') or '21610'})"
    else:
        how = f"source: {event.source}"
    return (
        f"The patient opted out of texts from this practice: {how}. Only the patient can opt back in, by texting START."
    )


def note_consent_change(conversation: Conversation, event: ConsentEvent | None) -> None:
    if event is not None:
        append(conversation, Direction.SYSTEM, consent_line(event), consent_event=event)


def flag_possible_opt_out(conversation: Conversation, rule: str) -> None:
    conversation.flag = Flag.POSSIBLE_OPT_OUT
    conversation.flag_rule = rule[:64]
    conversation.flagged_at = datetime.now(UTC)
    conversation.save(update_fields=["flag", "flag_rule", "flagged_at"])
    emit.optout_flagged(conversation)


def clear_flag(conversation: Conversation) -> None:
    if conversation.flag or conversation.flag_rule or conversation.flagged_at:
        conversation.flag, conversation.flag_rule, conversation.flagged_at = Flag.NONE, "", None
        conversation.save(update_fields=["flag", "flag_rule", "flagged_at"])


@transaction.atomic
def dismiss_flag(conversation: Conversation, actor: str) -> bool:
    """Staff judged the flagged reply not a request to stop: the flag goes, and the conversation keeps
    a line saying who decided, and when (the evidence if the patient later says they did ask).
    False when there was no flag."""
    if conversation.flag != Flag.POSSIBLE_OPT_OUT:
        return False
    rule = conversation.flag_rule or "unnamed rule"
    clear_flag(conversation)
    append(
        conversation,
        Direction.SYSTEM,
        f"Staff judged the reply flagged as a possible opt-out (rule: {rule}) not a request to stop.",
        author=actor,
        activity=False,
    )
    return True


def clean_body(practice: Practice, body) -> str:
    """The reply as it will be sent; texts start with the practice's name, which counts towards their length."""
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput("body", "write the text to send")
    body = body.strip()
    prefix = sms_prefix(practice)
    limit = MAX_SMS_CHARS - len(prefix)
    if len(body) > limit:
        raise InvalidInput("body", f"is longer than {limit} characters (texts start with {prefix!r})")
    return body


def create_staff_text(*, practice: Practice, number: str, body: str, actor: str, from_number: str = "") -> Delivery:
    """A staff text to one number through the normal delivery path, from ``from_number`` (one of the
    practice's numbers) if given, else from the patient's location's number or the practice's.

    Its kind is ``manual``: the SMS opt-out and the Blocked Communications list
    apply, here and again in the worker right before the provider call.
    """
    return create_direct_message(
        practice=practice,
        kind=Kind.MANUAL,
        category=REPLY_CATEGORY,
        channel=Channel.SMS,
        address=number,
        content={"sms": body},
        actor=actor,
        from_number=from_number,
    )


def last_texted_number(conversation: Conversation) -> str:
    """The practice's number the conversation's phone last texted ("" if it never texted): staff replies go
    from it, so the patient's thread stays on one number."""
    return (
        conversation.entries.filter(direction=Direction.INBOUND, inbound_message__isnull=False)
        .order_by("-created_at", "-pk")
        .values_list("inbound_message__to_number", flat=True)
        .first()
        or ""
    )


def reply_refusal(conversation: Conversation) -> ReplyRefused | None:
    """Why staff may not text the conversation's phone now (opted out, blocked), or None."""
    practice = conversation.practice
    reason = address_block_reason(
        kind=Kind.MANUAL,
        category=category_for(practice, REPLY_CATEGORY),
        channel=Channel.SMS,
        address=conversation.phone,
        state=ledger.consent_state(practice.pk, [conversation.phone]),
    )
    if reason == Reason.SMS_OPTED_OUT:
        return ReplyRefused(
            reason,
            f"{conversation.phone} opted out of texts from this practice; "
            "only the patient can opt back in by texting START",
        )
    if reason is not None:
        return ReplyRefused(
            reason, f"{conversation.phone} is on the Blocked Communications list for {REPLY_CATEGORY} messages"
        )
    return None


def reply(conversation: Conversation, body: str, actor: str) -> ConversationEntry:
    """Text the conversation's phone as staff; refused (``ReplyRefused``) when its consent forbids it."""
    practice = conversation.practice
    body = clean_body(practice, body)
    with transaction.atomic():
        refused = reply_refusal(conversation)
        if refused is not None:
            raise refused
        delivery = create_staff_text(
            practice=practice,
            number=conversation.phone,
            body=body,
            actor=actor,
            from_number=last_texted_number(conversation),
        )
        return append(conversation, Direction.OUTBOUND, body, delivery=delivery, author=actor)


def confirm_opt_out(conversation: Conversation, actor: str) -> ConsentEvent | None:
    """Staff opt the conversation's phone out of texts (confirming a flag, or on request); clears the flag.

    Returns the ledger event, or None when the number was already opted out.
    No confirmation text is sent: staff may act long after the request, and
    the phone has opted out.
    """
    with transaction.atomic():
        evidence = {"conversation_id": str(conversation.pk)}
        if conversation.flag:
            evidence["flag"] = conversation.flag
            evidence["flag_rule"] = conversation.flag_rule
        event = consent.record_sms_opt_out(
            practice=conversation.practice,
            number=conversation.phone,
            source=Source.STAFF,
            actor=actor,
            evidence=evidence,
        )
        note_consent_change(conversation, event)
        clear_flag(conversation)
    return event


# --- reading ---------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """An entry as staff see it; consent lines read from the ledger have no id."""

    id: int | None
    direction: str
    body: str
    author: str
    created_at: datetime
    delivery_id: int | None = None
    delivery_status: str | None = None


def patients_by_phone(practice: Practice, phones: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(patient id, first name) of every patient who has each phone, oldest patient first."""
    found: dict[str, list[tuple[str, str]]] = {phone: [] for phone in phones}
    rows = (
        PatientContact.objects.filter(contact_point__practice=practice, contact_point__address__in=phones)
        .order_by("patient__created_at", "patient_id")
        .values_list("contact_point__address", "patient_id", "patient__first_name")
    )
    for address, patient_id, first_name in rows:
        found[address].append((str(patient_id), first_name))
    return found


def with_last_entries(conversations) -> list[tuple[Conversation, ConversationEntry | None]]:
    """The conversations (a queryset) each with its latest entry, in two queries."""
    latest = ConversationEntry.objects.filter(conversation=OuterRef("pk")).order_by("-created_at", "-pk")
    rows = list(conversations.annotate(last_entry_id=Subquery(latest.values("pk")[:1])))
    entries = ConversationEntry.objects.in_bulk([c.last_entry_id for c in rows if c.last_entry_id])
    return [(c, entries.get(c.last_entry_id)) for c in rows]


def preview(entry: ConversationEntry | None) -> str:
    if entry is None:
        return ""
    body = " ".join(entry.body.split())
    return body if len(body) <= PREVIEW_CHARS else body[: PREVIEW_CHARS - 1] + "…"


def timeline(conversation: Conversation) -> list[Line]:
    """Every line of the conversation, oldest first.

    When the phone is opted out by a change this conversation has no line for
    (a carrier opt-out), that change is shown from the ledger.
    """
    lines = [
        Line(
            e.pk,
            e.direction,
            e.body,
            e.author,
            e.created_at,
            e.delivery_id,
            e.delivery.status if e.delivery else None,
        )
        for e in conversation.entries.select_related("delivery").order_by("created_at", "pk")
    ]
    latest = (
        ConsentEvent.objects.filter(
            practice_id=conversation.practice_id, subject=Subject.SMS, address=conversation.phone
        )
        .order_by("-seq")
        .first()
    )
    noted = conversation.entries.filter(consent_event=latest).exists() if latest else True
    if latest is not None and latest.state == SmsState.OPTED_OUT and not noted:
        lines.append(Line(None, Direction.SYSTEM, consent_line(latest), "", latest.created_at))
        lines.sort(key=lambda line: line.created_at)
    return lines
