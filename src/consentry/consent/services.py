"""Consent changes, one service each. A change that changes nothing records nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from django.db import transaction

from consentry.errors import InvalidInput
from consentry.patients.categories import clean_notification_preferences
from consentry.patients.models import Category, ContactKind, Patient, Practice

from . import address_lock, ledger, selectors
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
    *,
    practice: Practice,
    number: str,
    source: str,
    actor: str,
    evidence: Evidence | None = None,
    note: str = "",
    at: datetime | None = None,
) -> ConsentEvent | None:
    """``at``: when the person asked (a STOP's arrival, read a moment later by the worker); default now."""
    return _record_sms(practice, number, SmsState.OPTED_OUT, source, actor, evidence, note, at)


def record_sms_opt_in(
    *,
    practice: Practice,
    number: str,
    source: str,
    actor: str,
    evidence: Evidence | None = None,
    at: datetime | None = None,
) -> ConsentEvent | None:
    if source not in SMS_OPT_IN_SOURCES:
        raise ConsentRefused("only the person can opt a phone back in, by texting START or UNSTOP")
    return _record_sms(practice, number, SmsState.OPTED_IN, source, actor, evidence, "", at)


@transaction.atomic(savepoint=False)  # part of the caller's change (a STOP's), as ledger.record() is
def _record_sms(
    practice: Practice,
    number: str,
    state: SmsState,
    source: str,
    actor: str,
    evidence: Evidence | None,
    note: str,
    at: datetime | None,
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
        now=at,
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


# --- a patient's notification settings ---------------------------------------------------------------------------
#
# One ledger subject, ``notifications``, per patient ("patient:<id>"): its state is the whole of the patient's
# settings (per-type choices, channels turned off for every type, phones taken off the settings) as one
# canonical JSON text, and the projection writes them onto the patient. They say no as surely as an
# unsubscribe does, so they are proven the same way: when, by whom, from where.

_NOTIFICATION_FIELDS = ["notification_overrides", "channel_opt_outs", "notification_phones_removed"]


def _clean_phones_removed(patient: Patient, numbers: object, current: list[str]) -> list[str]:
    if not isinstance(numbers, (list, tuple)) or not all(isinstance(n, str) for n in numbers):
        raise InvalidInput("notification_phones_removed", "must be a list of phone numbers")
    added = set(numbers) - set(current)
    if unknown := sorted(added - selectors.patient_phone_numbers(patient)):
        raise InvalidInput("notification_phones_removed", f"not one of the patient's phones: {', '.join(unknown)}")
    return list(dict.fromkeys(numbers))


@transaction.atomic
def set_notification_preferences(
    *,
    patient: Patient,
    overrides: dict[str, dict[str, bool]] | None = None,
    channel_opt_outs: list[str] | None = None,
    phones_removed: list[str] | None = None,
    source: str,
    actor: str,
    evidence: Evidence | None = None,
) -> ConsentEvent | None:
    """Set a patient's notification settings; what is not given stays as it is.

    Checked first (``clean_notification_preferences``; a phone taken off must be one of the patient's):
    bad input raises ``InvalidInput`` and changes nothing. The change is a ``notifications`` ledger
    event, which the projection applies to the patient (and to ``patient``, the instance given).
    """
    ledger.lock(patient.practice_id)
    patient.refresh_from_db(fields=_NOTIFICATION_FIELDS)
    cleaned, opt_outs = clean_notification_preferences(
        patient.practice,
        patient.notification_overrides if overrides is None else overrides,
        patient.channel_opt_outs if channel_opt_outs is None else channel_opt_outs,
    )
    current_removed = list(patient.notification_phones_removed or [])
    removed = (
        current_removed if phones_removed is None else _clean_phones_removed(patient, phones_removed, current_removed)
    )
    state = ledger.notification_state(cleaned, opt_outs, removed)
    if state == ledger.patient_notification_state(patient):
        return None
    event = ledger.record(
        practice=patient.practice,
        subject=Subject.NOTIFICATIONS,
        address=ledger.patient_subject(patient.pk),
        state=state,
        source=source,
        actor=actor,
        evidence=evidence,
    )
    patient.notification_overrides, patient.channel_opt_outs, patient.notification_phones_removed = (
        ledger.read_notification_state(state)
    )
    return event


def _unknown_type(key: str) -> InvalidInput:
    return InvalidInput(f"notification_overrides.{key}", f"there is no notification type {key!r}")


@transaction.atomic
def set_notification_choices(
    *,
    patient: Patient,
    switches: Mapping[tuple[str, str], bool],
    channels: Mapping[str, bool],
    source: str,
    actor: str,
    evidence: Evidence | None = None,
) -> ConsentEvent | None:
    """What a patient chose on the portal's settings: (type, channel) switches, and channels on or off for every type.

    Only the switches ``selectors.notification_settings`` offers may be set, and a type the patient
    cannot turn off stays on: anything else raises ``InvalidInput`` and changes nothing. A switch set
    as the practice's grid has it keeps no choice of its own (the patient follows the practice's
    later changes there); one set otherwise is an override.
    """
    ledger.lock(patient.practice_id)
    patient.refresh_from_db(fields=_NOTIFICATION_FIELDS)
    settings = selectors.notification_settings(patient)
    grid = dict(Category.objects.filter(practice_id=patient.practice_id).values_list("key", "notification_channels"))
    overrides = {key: dict(chosen) for key, chosen in (patient.notification_overrides or {}).items()}
    for (key, channel), on in switches.items():
        row = settings.row(key)
        if row is None:
            raise _unknown_type(key)
        cell = next((c for c in row.cells if c.channel == channel), None)
        if cell is None or not cell.offered:
            raise InvalidInput(f"notification_overrides.{key}", f"{key} notices are not sent by {channel}")
        if cell.locked and not on:
            raise InvalidInput(f"notification_overrides.{key}", f"{key} notices cannot be turned off")
        chosen = overrides.setdefault(key, {})
        if on == (channel in grid[key]):
            chosen.pop(channel, None)
        else:
            chosen[channel] = on
        if not chosen:
            del overrides[key]
    opt_outs = list(patient.channel_opt_outs or [])
    for channel, on in channels.items():
        if channel not in settings.opt_out_channels:
            raise InvalidInput("channel_opt_outs", f"{channel} cannot be turned off for every notice")
        opt_outs = [c for c in opt_outs if c != channel] + ([] if on else [channel])
    return set_notification_preferences(
        patient=patient, overrides=overrides, channel_opt_outs=opt_outs, source=source, actor=actor, evidence=evidence
    )


def _own_phone(patient: Patient, number: str) -> str:
    if number not in selectors.patient_phone_numbers(patient):
        raise InvalidInput("number", "that number is not one of this patient's phones")
    return number


def stop_texts(
    *, patient: Patient, number: str, source: str, actor: str, evidence: Evidence | None = None
) -> ConsentEvent | None:
    """The patient asks that one of their phones get no more texts: that number's SMS opt-out, as a STOP is.

    Like a STOP, it stops texts to the number for everyone at the practice who gives it; only a
    keyword text from the phone (UNSTOP, START) opts it back in. None when it was opted out already.
    """
    _own_phone(patient, number)
    return record_sms_opt_out(practice=patient.practice, number=number, source=source, actor=actor, evidence=evidence)


@transaction.atomic
def stop_email(*, patient: Patient, source: str, actor: str, evidence: Evidence | None = None) -> list[ConsentEvent]:
    """No more email to the patient: each of their addresses unsubscribed (what every kind of message that
    respects an unsubscribe obeys), and email turned off for every notification type they may turn off
    (appointment notices ignore an unsubscribe, not this). The events recorded; none when nothing changed."""
    ledger.lock(patient.practice_id)
    events = []
    addresses = patient.contact_points.filter(kind=ContactKind.EMAIL).order_by("pk").values_list("address", flat=True)
    for address in addresses:
        events.append(
            record_email_state(
                practice=patient.practice,
                email=address,
                state=EmailState.UNSUBSCRIBED,
                source=source,
                actor=actor,
                evidence=evidence,
                keep_bounced=True,
            )
        )
    patient.refresh_from_db(fields=_NOTIFICATION_FIELDS)
    events.append(
        set_notification_preferences(
            patient=patient,
            channel_opt_outs=[*patient.channel_opt_outs, "email"],
            source=source,
            actor=actor,
            evidence=evidence,
        )
    )
    return [e for e in events if e is not None]


@transaction.atomic
def remove_notification_phone(
    *, patient: Patient, number: str, source: str, actor: str, evidence: Evidence | None = None
) -> ConsentEvent | None:
    """Take an opted-out phone off the patient's notification settings: no notice goes to it any more.

    For a family that means to keep the number opted out. Its opt-out, and its ledger history, stay
    as they are; other kinds of message (a staff member's call) are not concerned. Only a number that
    opted out of texts can be taken off (``InvalidInput`` otherwise).
    """
    _own_phone(patient, number)
    ledger.lock(patient.practice_id)
    if number not in ledger.consent_state(patient.practice_id, [number]).sms_opted_out:
        raise InvalidInput("number", "only a number that opted out of texts can be removed")
    patient.refresh_from_db(fields=_NOTIFICATION_FIELDS)
    return set_notification_preferences(
        patient=patient,
        phones_removed=[*patient.notification_phones_removed, number],
        source=source,
        actor=actor,
        evidence=evidence,
    )


@transaction.atomic
def restore_notification_phone(
    *, patient: Patient, number: str, source: str, actor: str, evidence: Evidence | None = None
) -> ConsentEvent | None:
    """Put a phone the patient took off back into their notification settings."""
    ledger.lock(patient.practice_id)
    patient.refresh_from_db(fields=_NOTIFICATION_FIELDS)
    if number not in patient.notification_phones_removed:
        raise InvalidInput("number", "that number is not one you removed")
    return set_notification_preferences(
        patient=patient,
        phones_removed=[n for n in patient.notification_phones_removed if n != number],
        source=source,
        actor=actor,
        evidence=evidence,
    )
