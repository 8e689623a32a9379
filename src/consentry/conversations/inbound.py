"""What happens when a text arrives: record it in its conversation, act on keywords, answer once.

Keywords are matched in English and in the practice's other keyword
languages; the answer is in the language of the keyword. A text that is not a
keyword but may ask to stop ("please stop texting me") is never ignored: under
the practice's "flag" policy its conversation is flagged for staff to confirm
with one action; under "auto" the opt-out is recorded at once and one
confirmation is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, connection, transaction

from consentry import sms
from consentry.consent import address_lock, ledger
from consentry.consent import services as consent
from consentry.consent.models import SmsState, Source
from consentry.keywords.classify import KeywordKind, classify_in, normalize
from consentry.keywords.models import InboundMessage
from consentry.keywords.reasonable import assess
from consentry.messaging.direct import create_keyword_reply
from consentry.patients.addresses import e164
from consentry.patients.locations import Route, RouteChanged
from consentry.patients.models import KeywordMode, Practice, ReasonableMeans
from consentry.providers.base import InboundText

from . import services as conversations
from .models import Direction
from .services import Thread


@dataclass(frozen=True)
class InboundResult:
    keyword: KeywordKind
    changed: bool  # the ledger recorded a change
    replied: bool
    replay: bool = False
    possible_opt_out: bool = False  # a reply that may ask to stop without the keyword
    rule: str = ""  # the rule that found it


def opt_out_confirmation(practice: Practice, language: str = "en") -> str:
    if language == "es":
        return (
            f"{practice.name}: Se canceló su suscripción; no recibirá más mensajes de este número. "
            "Para volver a suscribirse, responda INICIAR o START."
        )
    return (
        f"{practice.name}: You are unsubscribed and will get no more texts from this number. "
        "Reply START to subscribe again."
    )


def opt_in_confirmation(practice: Practice, language: str = "en") -> str:
    if language == "es":
        return (
            f"{practice.name}: Está suscrito de nuevo a nuestros mensajes. "
            "Pueden aplicarse tarifas de mensajes y datos. Responda AYUDA para obtener ayuda o PARAR para cancelar."
        )
    return (
        f"{practice.name}: You are subscribed to texts again. Msg & data rates may apply. "
        "Reply HELP for help, STOP to opt out."
    )


# The answer to HELP, fullest first: the practice's name, who to call, and how to stop (CTIA's HELP
# content). The first that fits one SMS segment is sent; a name too long for even the shortest is cut.
HELP_REPLIES = {
    "en": (
        "{name}: for help call {phone}. Msg & data rates may apply. Reply STOP to opt out.",
        "{name}: for help call {phone}. Reply STOP to opt out.",
        "{name}: help {phone}. STOP to opt out.",
    ),
    "es": (
        "{name}: para obtener ayuda, llame al {phone}. Pueden aplicarse tarifas de mensajes y datos. "
        "Responda PARAR para cancelar.",
        "{name}: para ayuda llame al {phone}. Responda PARAR para cancelar.",
        "{name}: ayuda {phone}. PARAR para cancelar.",
    ),
}


def help_reply(practice: Practice, language: str = "en") -> str:
    """The reply to HELP, in one SMS segment whatever the practice's name (GSM-7 or UCS-2)."""
    phone = practice.contact_phone or practice.texting_number
    templates = HELP_REPLIES.get(language, HELP_REPLIES["en"])
    for template in templates:
        text = template.format(name=practice.name, phone=phone)
        if sms.fits_one_segment(text):
            return text
    name = practice.name
    while name and not sms.fits_one_segment(templates[-1].format(name=name + ".", phone=phone)):
        name = name[:-1].rstrip()
    return templates[-1].format(name=f"{name}." if name else "", phone=phone)


def reasonable_means_confirmation(practice: Practice) -> str:
    """The one text allowed after a reply that asked to stop, which also lets a misread reply be undone."""
    return (
        f"{practice.name}: As you asked, you will get no more texts from this number. "
        "If you did not mean to stop them, reply START."
    )


def receive_inbound_text(text: InboundText) -> bool:
    """Store a verified text from a provider's webhook and leave the rest to the worker; False for a replay.

    This is all the webhook waits for: one insert, so that a STOP is answered
    in milliseconds whatever else the service is doing. From its commit the
    stored STOP is the opt-out for every send decision
    (``consent.ledger.consent_state``); a worker's reader then files it in
    its conversation, records it in the ledger at the time it was received,
    and answers once (``process_inbound``, from ``reader.py``).

    ``RouteChanged``, and nothing stored: the text came with a route (``patients.locations.Route``) that is no
    longer its number's (its practice, token or settings changed since it was read).
    """
    return _store(text, processed=False) is not None


def handle_inbound_text(text: InboundText) -> InboundResult:
    """Store a text and read it at once, in one transaction (the sandbox's phones, the demo)."""
    with transaction.atomic():
        inbound = _store(text, processed=True)
        if inbound is None:
            keyword, _ = classify_in(text.body, ["en", *text.practice.keyword_languages])
            return InboundResult(keyword, changed=False, replied=False, replay=True)
        return _read(inbound)


def handle_inbound_sms(
    *, practice: Practice, from_number: str, to_number: str, body: str, provider_ref: str, provider: str = "twilio"
) -> InboundResult:
    return handle_inbound_text(
        InboundText(
            practice=practice,
            from_number=from_number,
            to_number=to_number,
            body=body,
            provider=provider,
            provider_ref=provider_ref,
        )
    )


def _store(text: InboundText, *, processed: bool) -> InboundMessage | None:
    """The text as received, with what it asks (None: the provider retried a text already stored here).

    A STOP takes its address's lock first, so that a hand-over to a provider already under way for that
    number ends before it (see ``consent.address_lock``), and every later one sees it."""
    practice = text.practice
    number = e164(text.from_number, region=practice.region, field="From")
    keyword, _ = classify_in(text.body, ["en", *practice.keyword_languages])
    asks_to_stop = keyword == KeywordKind.OPT_OUT or (
        keyword == KeywordKind.NONE
        and practice.reasonable_means == ReasonableMeans.AUTO
        and assess(text.body, ["en", *practice.keyword_languages]).certain
    )
    inbound = InboundMessage(
        practice_id=practice.pk,
        provider=text.provider,
        provider_ref=text.provider_ref,
        from_number=number,
        to_number=text.to_number,
        body=text.body,
        keyword=keyword,
        asks_to_stop=asks_to_stop,
        received_at=datetime.now(UTC),
    )
    inbound.processed_at = inbound.received_at if processed else None
    locked = asks_to_stop and address_lock.taken()
    # A route the webhook kept from an earlier text is stored by only while it is still the practice's.
    only_if = practice.still_current() if isinstance(practice, Route) else None
    try:
        if not connection.in_atomic_block:
            # One statement, its own transaction (unread, the text is the readers' queue: ``reader.py``). On SQLite
            # the write lock is held inside it alone; on PostgreSQL a STOP takes its address's lock inside it, and
            # counts from then, after any hand-over to the number it waited for.
            lock = address_lock.key(practice.pk, number) if locked else None
            if not inbound.insert(lock=lock, only_if=only_if):
                raise RouteChanged
            return inbound
        with transaction.atomic():  # (nested: a savepoint, so a replay leaves the caller's transaction usable)
            if locked:
                address_lock.for_change(practice.pk, number)
                # It may have waited for a hand-over to this number: the STOP counts from now, after it.
                inbound.received_at = datetime.now(UTC)
                inbound.processed_at = inbound.received_at if processed else None
            if not inbound.insert(only_if=only_if):
                raise RouteChanged
            return inbound
    except IntegrityError:
        # The provider retried a webhook we already stored (the same message id at this practice).
        if InboundMessage.objects.filter(
            practice_id=practice.pk, provider=text.provider, provider_ref=text.provider_ref
        ).exists():
            return None
        raise


def process_inbound(pk: int) -> InboundResult | None:
    """Read a stored text (a worker's reader): None when it was read already."""
    with transaction.atomic():
        # The claim: one reader locks the unread row (another passes it by) and sets processed_at; the
        # effects below commit with it.
        inbound = (
            InboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("practice")
            .filter(pk=pk, processed_at__isnull=True)
            .first()
        )
        if inbound is None:
            return None
        inbound.processed_at = datetime.now(UTC)
        inbound.save(update_fields=["processed_at"])
        return _read(inbound)


def _read(inbound: InboundMessage) -> InboundResult:
    """File the text in its conversation, act on its keyword or what it asks, and answer once; in the caller's
    transaction, with no savepoint inside it."""
    practice = inbound.practice
    keyword = KeywordKind(inbound.keyword)
    _, language = classify_in(inbound.body, ["en", *practice.keyword_languages])
    # The patient said it plainly: an earlier possible opt-out needs no one's judgement now.
    settles = keyword in (KeywordKind.OPT_OUT, KeywordKind.OPT_IN)
    thread = conversations.record_inbound(practice, inbound.from_number, inbound, clear_flag=settles)
    if keyword == KeywordKind.NONE:
        result = _reasonable_means(practice, thread, inbound)
    else:
        result = _act(practice, thread, keyword, language, inbound)
    thread.save()
    return result


def _evidence(inbound: InboundMessage, **more) -> dict:
    """What the ledger keeps of a received text: a reference to it, never its words.

    The ledger is append-only, so free text written into it could never be
    removed; the text itself stays in the (encrypted) inbound message.
    """
    return {"message_sid": inbound.provider_ref, "inbound_message": inbound.pk, **more}


def _act(
    practice: Practice, thread: Thread, keyword: KeywordKind, language: str, inbound: InboundMessage
) -> InboundResult:
    number = thread.conversation.phone
    # A keyword is the whole message, so the keyword is all there is of its text.
    evidence = _evidence(inbound, keyword=normalize(inbound.body))
    reply = None
    event = None
    if keyword in (KeywordKind.OPT_OUT, KeywordKind.OPT_IN):
        opting_out = keyword == KeywordKind.OPT_OUT
        record = consent.record_sms_opt_out if opting_out else consent.record_sms_opt_in
        event = record(
            practice=practice,
            number=number,
            source=Source.SMS_KEYWORD,
            actor=number,
            evidence=evidence,
            at=inbound.received_at,  # when the person asked, not when the worker read it
        )
        confirmation = opt_out_confirmation if opting_out else opt_in_confirmation
        reply = confirmation(practice, language) if event else None
    elif keyword == KeywordKind.HELP:
        reply = help_reply(practice, language)
    thread.note_consent_change(event)  # its flag, if any, was cleared with the text's arrival
    replied = _answer(practice, thread, reply, inbound.to_number)
    return InboundResult(keyword, event is not None, replied=replied)


def _reasonable_means(practice: Practice, thread: Thread, inbound: InboundMessage) -> InboundResult:
    """A text that is not a keyword: flag it, or opt out at once, when it may ask to stop."""
    conversation = thread.conversation
    assessment = assess(inbound.body, ["en", *practice.keyword_languages])
    if not assessment.possible_opt_out:
        return InboundResult(KeywordKind.NONE, changed=False, replied=False)
    if ledger.address_status(practice.pk, conversation.phone).sms == SmsState.OPTED_OUT:
        # Already opted out: the request is honoured; nothing is left to decide.
        return InboundResult(
            KeywordKind.NONE, changed=False, replied=False, possible_opt_out=True, rule=assessment.rule
        )
    if practice.reasonable_means != ReasonableMeans.AUTO or not assessment.certain:
        # Staff confirm: the policy asks for it, or the reply is not clear enough to act on alone.
        conversations.flag_possible_opt_out(conversation, assessment.rule)
        return InboundResult(
            KeywordKind.NONE, changed=False, replied=False, possible_opt_out=True, rule=assessment.rule
        )
    event = consent.record_sms_opt_out(
        practice=practice,
        number=conversation.phone,
        source=Source.SMS_REPLY,
        actor=conversation.phone,
        evidence=_evidence(inbound, rule=assessment.rule),
        at=inbound.received_at,
    )
    thread.note_consent_change(event)
    replied = _answer(practice, thread, reasonable_means_confirmation(practice) if event else None, inbound.to_number)
    return InboundResult(
        KeywordKind.NONE, event is not None, replied=replied, possible_opt_out=True, rule=assessment.rule
    )


def _answer(practice: Practice, thread: Thread, reply: str | None, to_number: str) -> bool:
    """Answer once, from the number that was texted (``to_number``, the practice's or a location's)."""
    # In provider-managed mode (Twilio Advanced Opt-Out) the carrier side has
    # already answered; a second confirmation would be one text too many.
    if not reply or practice.keyword_mode != KeywordMode.SELF_MANAGED:
        return False
    delivery = create_keyword_reply(
        practice=practice, number=thread.conversation.phone, body=reply, actor="keyword", from_number=to_number
    )
    thread.add(Direction.OUTBOUND, reply, delivery=delivery)
    return True
