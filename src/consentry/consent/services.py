"""Consent changes, one service each. A change that changes nothing records nothing."""

from __future__ import annotations

import json

from django.db import transaction

from consentry.errors import InvalidInput
from consentry.patients.models import Category, Patient, Practice

from . import address_lock, ledger
from .ledger import Evidence
from .models import Block, ConsentEvent, ContactConsent, EmailState, SmsState, Source, Subject


class ConsentRefused(Exception):
    """A change the rules forbid, e.g. staff opting a phone back in to texts."""


# Only the person can undo an SMS opt-out: by a keyword text from that phone
# (the portal's Opt in button composes one). Carrier rules (CTIA) and TCPA.
SMS_OPT_IN_SOURCES = frozenset({Source.SMS_KEYWORD})


def _current(practice: Practice, address: str, field: str, default: str) -> str:
    """The address's state, read under the practice's ledger lock and the address's own (taken here: callers need
    not). The address lock waits for hand-overs to it in flight, and makes later ones see this change."""
    ledger.lock(practice.pk)
    address_lock.for_change(practice.pk, address)
    value = ContactConsent.objects.filter(practice=practice, address=address).values_list(field, flat=True).first()
    return value or default


def record_sms_opt_out(
    *, practice: Practice, number: str, source: str, actor: str, evidence: Evidence | None = None, note: str = ""
) -> ConsentEvent | None:
    return _record_sms(practice, number, SmsState.OPTED_OUT, source, actor, evidence, note)


def record_sms_opt_in(
    *, practice: Practice, number: str, source: str, actor: str, evidence: Evidence | None = None
) -> ConsentEvent | None:
    if source not in SMS_OPT_IN_SOURCES:
        raise ConsentRefused("only the person can opt a phone back in, by texting START or UNSTOP")
    return _record_sms(practice, number, SmsState.OPTED_IN, source, actor, evidence, "")


@transaction.atomic
def _record_sms(
    practice: Practice, number: str, state: SmsState, source: str, actor: str, evidence: Evidence | None, note: str
) -> ConsentEvent | None:
    if _current(practice, number, "sms", SmsState.OPTED_IN) == state:
        return None
    return ledger.record(
        practice=practice,
        subject=Subject.SMS,
        address=number,
        state=state,
        source=source,
        actor=actor,
        evidence=evidence,
        note=note,
    )


@transaction.atomic
def record_email_state(
    *,
    practice: Practice,
    email: str,
    state: EmailState,
    source: str,
    actor: str,
    evidence: Evidence | None = None,
    note: str = "",
    keep_bounced: bool = False,
) -> ConsentEvent | None:
    """Set an email address's state; ``keep_bounced``: a bounced address stays bounced (it already gets nothing)."""
    current = _current(practice, email, "email", EmailState.SUBSCRIBED)
    if current == state or (keep_bounced and current == EmailState.BOUNCED):
        return None
    return ledger.record(
        practice=practice,
        subject=Subject.EMAIL,
        address=email,
        state=state,
        source=source,
        actor=actor,
        evidence=evidence,
        note=note,
    )


def staff_opt_out(*, practice: Practice, address: str, reason: str, actor: str) -> ConsentEvent | None:
    """Staff stop texts to a phone, or email to an address, because the person asked them to.

    ``address`` is normalized. The reason is kept as an encrypted note, not in
    the ledger. There is no staff opt-in: only the person can opt back in.
    Returns None when the address could already not be reached.
    """
    if "@" in address:
        return record_email_state(
            practice=practice,
            email=address,
            state=EmailState.UNSUBSCRIBED,
            source=Source.STAFF,
            actor=actor,
            note=reason,
            keep_bounced=True,
        )
    return record_sms_opt_out(practice=practice, number=address, source=Source.STAFF, actor=actor, note=reason)


@transaction.atomic
def set_block(
    *, practice: Practice, number: str, categories: list[str], source: str, actor: str, evidence: Evidence | None = None
) -> ConsentEvent | None:
    """Set the categories a number is blocked for; an empty list removes the block.

    Every category must be one of the practice's (``InvalidInput`` otherwise, and nothing changes).
    """
    wanted = sorted(set(categories))
    known = set(Category.objects.filter(practice=practice).values_list("key", flat=True))
    if unknown := sorted(set(wanted) - known):
        raise InvalidInput("categories", f"unknown category: {', '.join(unknown)}")
    ledger.lock(practice.pk)
    address_lock.for_change(practice.pk, number)
    current = Block.objects.filter(practice=practice, number=number).values_list("categories", flat=True).first()
    if sorted(current or []) == wanted:
        return None
    return ledger.record(
        practice=practice,
        subject=Subject.BLOCK,
        address=number,
        state=json.dumps(wanted),
        source=source,
        actor=actor,
        evidence=evidence,
    )


@transaction.atomic
def set_marketing_consent(*, patient: Patient, value: str, source: str, actor: str) -> ConsentEvent | None:
    ledger.lock(patient.practice_id)
    patient.refresh_from_db(fields=["marketing_consent"])
    if patient.marketing_consent == value:
        return None
    event = ledger.record(
        practice=patient.practice,
        subject=Subject.MARKETING,
        address=ledger.patient_subject(patient.pk),
        state=value,
        source=source,
        actor=actor,
    )
    patient.marketing_consent = value
    return event


@transaction.atomic
def set_do_not_contact(*, patient: Patient, value: bool, source: str, actor: str) -> ConsentEvent | None:
    ledger.lock(patient.practice_id)
    patient.refresh_from_db(fields=["do_not_contact"])
    if patient.do_not_contact == value:
        return None
    event = ledger.record(
        practice=patient.practice,
        subject=Subject.DO_NOT_CONTACT,
        address=ledger.patient_subject(patient.pk),
        state="on" if value else "off",
        source=source,
        actor=actor,
    )
    patient.do_not_contact = value
    return event
