"""Conversations API: read a phone's two-way conversation, reply as staff, opt a number out.

A staff reply to a number that cannot be texted (opted out, or blocked) is
refused with 409 and a stable ``reason`` (``sms_opted_out``,
``blocked_for_category``): the request itself is well formed, the number's
consent forbids it, and nothing is written or sent. Only the patient can opt
back in, by texting START.
"""

from __future__ import annotations

import uuid
from typing import Literal

from django.http import Http404, HttpRequest
from ninja import Query, Router, Schema, Status

from consentry.api.auth import SEND, actor_of, practice_of
from consentry.api.errors import ErrorOut, error
from consentry.api.schemas import MAX_OFFSET, In
from consentry.consent import ledger
from consentry.consent.models import SmsState
from consentry.conversations import services
from consentry.conversations.models import Conversation, ConversationEntry, Flag
from consentry.vocabulary import Reason
from consentry.vocabulary import Status as DeliveryStatus

router = Router(tags=["conversations"])


def _conversation(request: HttpRequest, conversation_id: str) -> Conversation:
    try:
        pk = uuid.UUID(conversation_id)
    except ValueError:
        raise Http404("no such conversation") from None
    conversation = Conversation.objects.select_related("practice").filter(practice=practice_of(request), pk=pk).first()
    if conversation is None:
        raise Http404("no such conversation")
    return conversation


class PatientRef(Schema):
    id: str
    first_name: str


class EntryOut(Schema):
    id: int | None  # null for a consent change shown from the ledger
    direction: Literal["inbound", "outbound", "system"]
    body: str
    author: str
    created_at: str
    delivery_id: int | None
    delivery_status: DeliveryStatus | None


class PreviewOut(Schema):
    direction: Literal["inbound", "outbound", "system"]
    text: str
    created_at: str


class ConversationOut(Schema):
    id: str
    phone: str
    patients: list[PatientRef]
    flag: Literal["", "possible_opt_out"]
    flag_rule: str
    flagged_at: str | None
    sms: Literal["opted_in", "opted_out"]
    opted_out: bool
    last_activity_at: str
    last_entry: PreviewOut | None


class ConversationDetailOut(ConversationOut):
    entries: list[EntryOut]


class ReplyIn(In):
    body: str


class ReplyOut(Schema):
    entry: EntryOut
    delivery_id: int


class RefusedOut(ErrorOut):
    """``error.code`` says why the reply was refused: ``sms_opted_out``, ``blocked_for_category``..."""

    reason: Reason


class ConversationOptOutOut(Schema):
    conversation: ConversationDetailOut
    changed: bool  # False: the number was already opted out


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _header(conversation: Conversation, patients: list, sms: str, last: ConversationEntry | None) -> dict:
    return {
        "id": str(conversation.pk),
        "phone": conversation.phone,
        "patients": [{"id": pid, "first_name": name} for pid, name in patients],
        "flag": conversation.flag,
        "flag_rule": conversation.flag_rule,
        "flagged_at": _iso(conversation.flagged_at),
        "sms": sms,
        "opted_out": sms == SmsState.OPTED_OUT,
        "last_activity_at": _iso(conversation.last_activity_at),
        "last_entry": {"direction": last.direction, "text": services.preview(last), "created_at": _iso(last.created_at)}
        if last
        else None,
    }


def _entry_out(line: services.Line) -> dict:
    return {
        "id": line.id,
        "direction": line.direction,
        "body": line.body,
        "author": line.author,
        "created_at": _iso(line.created_at),
        "delivery_id": line.delivery_id,
        "delivery_status": line.delivery_status,
    }


def _detail(conversation: Conversation) -> dict:
    practice = conversation.practice
    patients = services.patients_by_phone(practice, [conversation.phone])[conversation.phone]
    sms = ledger.address_status(practice.pk, conversation.phone).sms
    lines = services.timeline(conversation)
    last = conversation.entries.order_by("-created_at", "-pk").first()
    return {**_header(conversation, patients, sms, last), "entries": [_entry_out(line) for line in lines]}


@router.get("", response=list[ConversationOut])
def conversations_list(
    request,
    flag: Literal["possible_opt_out"] | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    """Conversations, newest activity first; ``?flag=possible_opt_out`` lists those waiting for staff."""
    practice = practice_of(request)
    conversations = Conversation.objects.filter(practice=practice)
    if flag:
        conversations = conversations.filter(flag=Flag.POSSIBLE_OPT_OUT)
    page = services.with_last_entries(
        conversations.order_by("-last_activity_at", "-created_at")[offset : offset + limit]
    )
    phones = [c.phone for c, _ in page]
    patients = services.patients_by_phone(practice, phones)
    opted_out = ledger.consent_state(practice.pk, phones).sms_opted_out
    return [
        _header(c, patients[c.phone], SmsState.OPTED_OUT if c.phone in opted_out else SmsState.OPTED_IN, last)
        for c, last in page
    ]


@router.get("/{conversation_id}", response=ConversationDetailOut)
def conversations_get(request, conversation_id: str):
    return _detail(_conversation(request, conversation_id))


@router.post("/{conversation_id}/replies", response={201: ReplyOut, 409: RefusedOut}, auth=SEND)
def conversations_reply(request, conversation_id: str, payload: ReplyIn):
    """Text the conversation's phone as staff. Refused with 409 when the number cannot be texted."""
    conversation = _conversation(request, conversation_id)
    try:
        entry = services.reply(conversation, payload.body, actor_of(request))
    except services.ReplyRefused as refused:
        return Status(409, error(str(refused.reason), refused.message, reason=refused.reason))
    line = services.Line(
        entry.pk,
        entry.direction,
        entry.body,
        entry.author,
        entry.created_at,
        entry.delivery_id,
        entry.delivery.status if entry.delivery else None,
    )
    return Status(201, {"entry": _entry_out(line), "delivery_id": entry.delivery_id})


@router.post("/{conversation_id}/opt-out", response=ConversationOptOutOut)
def conversations_opt_out(request, conversation_id: str):
    """Opt the phone out of texts on the patient's request (or confirm a flagged reply); clears the flag.

    Staff can never opt a number back in: only the patient can, by texting START.
    """
    conversation = _conversation(request, conversation_id)
    event = services.confirm_opt_out(conversation, actor_of(request))
    return {"conversation": _detail(conversation), "changed": event is not None}
