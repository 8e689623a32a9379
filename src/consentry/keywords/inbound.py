"""What happens when a text arrives: record it, act on keywords, answer once."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from consentry.consent import services as consent
from consentry.consent.models import Source
from consentry.messaging.planning import create_keyword_reply
from consentry.patients.models import KeywordMode, Practice
from consentry.patients.services import normalize_phone

from .classify import KeywordKind, classify, normalize
from .models import InboundMessage


@dataclass(frozen=True)
class InboundResult:
    keyword: KeywordKind
    changed: bool  # the ledger recorded a change
    replied: bool
    replay: bool = False


def opt_out_confirmation(practice: Practice) -> str:
    return (
        f"{practice.name}: You are unsubscribed and will get no more texts from this number. "
        "Reply START to subscribe again."
    )


def opt_in_confirmation(practice: Practice) -> str:
    return (
        f"{practice.name}: You are subscribed to texts again. Msg & data rates may apply. "
        "Reply HELP for help, STOP to opt out."
    )


def help_reply(practice: Practice) -> str:
    return (
        f"{practice.name}: for help call {practice.contact_phone or practice.texting_number}. "
        "Msg & data rates may apply. Reply STOP to opt out."
    )


def handle_inbound_sms(
    *, practice: Practice, from_number: str, to_number: str, body: str, provider_ref: str
) -> InboundResult:
    number = normalize_phone(from_number, region=practice.region, field="From").number
    keyword = classify(body)
    try:
        with transaction.atomic():
            InboundMessage.objects.create(
                practice=practice, provider_ref=provider_ref, from_number=number,
                to_number=to_number, body=body, keyword=keyword,
            )
            return _act(practice, number, keyword, body, provider_ref)
    except IntegrityError:
        # The provider retried a webhook we already processed (same MessageSid).
        if InboundMessage.objects.filter(provider_ref=provider_ref).exists():
            return InboundResult(keyword, changed=False, replied=False, replay=True)
        raise


def _act(practice: Practice, number: str, keyword: KeywordKind, body: str, provider_ref: str) -> InboundResult:
    evidence = {"message_sid": provider_ref, "keyword": normalize(body), "body": body[:160]}
    reply = None
    changed = False
    if keyword == KeywordKind.OPT_OUT:
        changed = consent.record_sms_opt_out(
            practice=practice, number=number, source=Source.SMS_KEYWORD, actor=number, evidence=evidence
        ) is not None
        reply = opt_out_confirmation(practice) if changed else None
    elif keyword == KeywordKind.OPT_IN:
        changed = consent.record_sms_opt_in(
            practice=practice, number=number, source=Source.SMS_KEYWORD, actor=number, evidence=evidence
        ) is not None
        reply = opt_in_confirmation(practice) if changed else None
    elif keyword == KeywordKind.HELP:
        reply = help_reply(practice)
    # In provider-managed mode (Twilio Advanced Opt-Out) the carrier side has
    # already answered; a second confirmation would be one text too many.
    if reply and practice.keyword_mode == KeywordMode.SELF_MANAGED:
        create_keyword_reply(practice=practice, number=number, body=reply, actor="keyword")
        return InboundResult(keyword, changed, replied=True)
    return InboundResult(keyword, changed, replied=False)
