"""Recalls: the patients due for a recall category, how a recall can reach each one, and sending it.

What each row offers is the decision engine's answer (``records.dues.patients_due()``), and the
send is an automation planned by ``create_message()``: the engine picks each patient's channel,
text first, then a call, then email, and records why it skipped any. The page never offers a
channel the engine would refuse: a number blocked for recalls, opted out, a landline or an
invalid number shows its text option greyed out, with the reason on hover.

A little over 300 lines: the list, the send and the outcome page of one screen. The outcome's
counting (``recall_outcome``) is to move to ``messaging/selectors.py: message_report``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from consentry.errors import InvalidInput
from consentry.messaging.models import Delivery, Message
from consentry.messaging.planning import create_message
from consentry.records.dues import (
    NOT_PREFERRED,
    RECALL,
    DuePatient,
    Reach,
    default_due_before,
    patients_due,
    practice_categories,
)
from consentry.vocabulary import Channel, Kind, Reason, Status

from .access import page_number, staff_page

PER_PAGE = 100
CHANNEL_NAMES = {Channel.SMS: "Text", Channel.VOICE: "Call", Channel.EMAIL: "Email"}

# The recall as it is first offered; staff may reword it. Tokens are filled in per patient.
RECALL_TEXT = (
    "Hi {{first_name}}, it is time for your next visit at {{practice_name}}. "
    "Please call us on {{practice_phone}} to book."
)
RECALL_EMAIL_SUBJECT = "Time to book your next visit at {{practice_name}}"
# Automated texts say how to stop them (CTIA); texts already start with the practice's name.
SMS_FOOTER = " Reply STOP to opt out."


def recall_content(text: str, channels: list[str]) -> dict:
    """The message content of a recall with this text, for the channels chosen."""
    content: dict = {}
    if Channel.SMS in channels:
        content["sms"] = text if "STOP" in text.upper() else text.rstrip() + SMS_FOOTER
    if Channel.VOICE in channels:
        content["voice"] = text
    if Channel.EMAIL in channels:
        content["email"] = {"subject": RECALL_EMAIL_SUBJECT, "text": text, "html": ""}
    return content


def reason_words(reason: str, *, channel: str = "", category: str = "", preferred: str = "") -> str:
    """A reason code in the words staff read on hover and in the outcome."""
    what = category.replace("_", " ") or "this category"
    words = {
        Reason.BLOCKED_FOR_CATEGORY: f"Number blocked for {what} on the Blocked Communications list",
        Reason.SMS_OPTED_OUT: "Opted out of texts: only the patient can opt back in, by texting START",
        Reason.NO_TEXT_CAPABLE_PHONE: "Landline: it takes calls, not texts",
        Reason.PHONE_INVALID: "Not a valid phone number",
        Reason.EMAIL_UNSUBSCRIBED: "Unsubscribed from email",
        Reason.EMAIL_BOUNCED: "Email bounced: the address is refused",
        Reason.DO_NOT_CONTACT: "Do not contact: no automation reaches this patient",
        Reason.NO_MARKETING_CONSENT: "No marketing consent in the practice-management system",
        Reason.NO_REACHABLE_CHANNEL: "No email address on record" if channel == Channel.EMAIL else "No phone on record",
        Reason.QUIET_HOURS: "Waiting for the practice's sending hours",
        Reason.FREQUENCY_CAP: "Frequency cap reached for this number",
        NOT_PREFERRED: f"Not the preferred phone: recalls go to {preferred or 'the preferred phone'}",
    }
    return words.get(reason, reason.replace("_", " "))


@dataclass(frozen=True)
class ChannelOption:
    name: str  # Text, Call, Email
    reach: Reach
    why: str  # why not, in words ("" when it can go)


@dataclass(frozen=True)
class RecallRow:
    due: DuePatient
    options: list[ChannelOption]
    overdue: bool
    selected: bool


def _rows(found: list[DuePatient], category: str, today: date, selected: set[str]) -> list[RecallRow]:
    rows = []
    for due in found:
        preferred = next((a.card.point.address for a in due.addresses if a.preferred), "")
        options = [
            ChannelOption(
                CHANNEL_NAMES[r.channel],
                r,
                reason_words(r.reason, channel=r.channel, category=category, preferred=preferred) if r.reason else "",
            )
            for r in due.channels
        ]
        rows.append(RecallRow(due, options, due.due_on < today, str(due.patient.pk) in selected))
    return rows


# Which part of the form a refusal is about, in the words of the form.
FIELD_WORDS = {
    "due_before": "Due before",
    "patient_ids": "Patients",
    "send_by": "Send by",
    "category": "Category",
    "content.sms": "Text of the recall",
    "content.voice": "Text of the recall",
    "content.email.text": "Text of the recall",
    "content.email.subject": "Text of the recall",
    "content": "Text of the recall",
    "text": "Text of the recall",
}


def _list(
    request: HttpRequest,
    params,
    *,
    selected: set[str] | None = None,
    text: str = RECALL_TEXT,
    send_by: list[str] | None = None,
    errors: dict[str, str] | None = None,
    send_key: str = "",
) -> HttpResponse:
    """The recall list for these query parameters (a GET's, or a refused send's form)."""
    practice = request.staff.practice  # type: ignore[attr-defined]
    errors = dict(errors or {})  # the form's words for a field -> what is wrong
    category = params.get("category") or RECALL
    before = default_due_before(practice)
    found: list[DuePatient] = []
    has_next = False
    page = page_number(params.get("page"))
    try:
        if raw := params.get("due_before", ""):
            try:
                before = date.fromisoformat(raw)
            except ValueError:
                raise InvalidInput("due_before", "enter the date as YYYY-MM-DD") from None
        listed = patients_due(practice, category=category, before=before, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
        found, has_next = listed.patients, listed.has_more
    except InvalidInput as exc:
        errors[FIELD_WORDS.get(exc.field, exc.field)] = exc.message
    today = datetime.now(ZoneInfo(practice.timezone)).date()
    query = {"category": category, "due_before": before.isoformat()}
    context = {
        "nav": "recalls",
        "categories": practice_categories(practice),
        "category": category,
        "before": before,
        "rows": _rows(found, category, today, selected or set()),
        "page": page,
        "previous_page": urlencode({**query, "page": page - 1}) if page > 1 else "",
        "next_page": urlencode({**query, "page": page + 1}) if has_next else "",
        "text": text,
        "send_by": send_by if send_by is not None else list(CHANNEL_NAMES),
        "channel_names": [(c.value, n) for c, n in CHANNEL_NAMES.items()],
        "errors": errors,
        "send_key": send_key or uuid.uuid4().hex,
    }
    return render(request, "staff/recalls.html", context, status=422 if errors else 200)


@staff_page
def recall_list(request: HttpRequest) -> HttpResponse:
    return _list(request, request.GET)


def _send_key(raw: str) -> str:
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        return ""


@require_POST
@staff_page
def send_recall(request: HttpRequest) -> HttpResponse:
    """Send a recall to the patients ticked: an automation, each patient's channel chosen by the engine."""
    staff = request.staff  # type: ignore[attr-defined]
    ids = request.POST.getlist("patient")
    send_by = [c for c in request.POST.getlist("send_by") if c in CHANNEL_NAMES]
    text = request.POST.get("text", "")
    # The form's own key: the same form sent twice (a double click, a resend) plans one recall.
    key = _send_key(request.POST.get("send_key", ""))
    try:
        if not ids:
            raise InvalidInput("patient_ids", "select at least one patient")
        if not send_by:
            raise InvalidInput("send_by", "choose at least one way to send it")
        if not text.strip():
            raise InvalidInput("text", "write the text of the recall")
        planned = create_message(
            practice=staff.practice,
            kind=Kind.AUTOMATION,
            category=request.POST.get("category") or RECALL,
            patient_ids=ids,
            content=recall_content(text, send_by),
            actor=staff.actor,
            idempotency_key=f"staff-recall:{key}" if key else "",
        )
    except InvalidInput as exc:
        if exc.field == "Idempotency-Key":  # this very form planned a recall already
            error, key = {"Send recall": "this form was sent already; send the recall again from here"}, ""
        else:
            error = {FIELD_WORDS.get(exc.field, exc.field): exc.message}
        return _list(request, request.POST, selected=set(ids), text=text, send_by=send_by, errors=error, send_key=key)
    return redirect("staff-recall-sent", message_id=planned.message.pk)


@dataclass(frozen=True)
class Outcome:
    """What became of a recall: its deliveries counted, skipped ones by reason."""

    patients: int
    reached: int  # patients with a delivery that goes (or went) out
    planned: int  # deliveries that go out: every one not skipped
    waiting: int  # pending, or deferred to the sending hours
    pending: int  # due to go now (a worker has yet to hand them over)
    sent: int  # handed to the provider (sent or delivered)
    failed: int  # failed, or refused by the carrier or mailbox after sending
    by_channel: list[tuple[str, int, int]]  # (channel, planned, sent)
    skipped: list[tuple[str, str, int]]  # (channel, reason in words, how many), most first

    @property
    def done(self) -> bool:
        return self.pending == 0  # deferred ones wait for the sending hours: no need to keep asking

    @property
    def skipped_total(self) -> int:
        return sum(n for _, _, n in self.skipped)


SENT = (Status.SENT, Status.DELIVERED)
FAILED = (Status.FAILED, Status.UNDELIVERED)
WAITING = (Status.PENDING, Status.DEFERRED)


def recall_outcome(message: Message) -> Outcome:
    """The recall's deliveries counted by channel, status and reason (three queries).

    (A read for the messaging selectors, kept here while the staff app is built.)
    """
    counts = list(
        Delivery.objects.filter(message=message)
        .values_list("channel", "status", "reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    patients = Delivery.objects.filter(message=message).values("patient_id").distinct().count()
    reached = (
        Delivery.objects.filter(message=message).exclude(status=Status.SKIPPED).values("patient_id").distinct().count()
    )
    by_channel: dict[str, list[int]] = {}
    skipped: dict[tuple[str, str], int] = {}
    totals = {"planned": 0, "waiting": 0, "pending": 0, "sent": 0, "failed": 0}
    for channel, status, reason, n in counts:
        if status == Status.SKIPPED:
            words = reason_words(reason, channel=channel, category=message.category)
            key = (CHANNEL_NAMES.get(Channel(channel), channel), words)
            skipped[key] = skipped.get(key, 0) + n
            continue
        entry = by_channel.setdefault(channel, [0, 0])
        entry[0] += n
        totals["planned"] += n
        if status in SENT:
            entry[1] += n
            totals["sent"] += n
        elif status in WAITING:
            totals["waiting"] += n
            totals["pending"] += n if status == Status.PENDING else 0
        elif status in FAILED:
            totals["failed"] += n
    return Outcome(
        patients=patients,
        reached=reached,
        by_channel=[
            (name, by_channel[c.value][0], by_channel[c.value][1])
            for c, name in CHANNEL_NAMES.items()
            if c.value in by_channel
        ],
        skipped=sorted(((ch, why, n) for (ch, why), n in skipped.items()), key=lambda s: (-s[2], s[0], s[1])),
        **totals,
    )


@staff_page
def recall_sent(request: HttpRequest, message_id: uuid.UUID) -> HttpResponse:
    """What became of a recall; the counts refresh themselves while deliveries are on their way."""
    practice = request.staff.practice  # type: ignore[attr-defined]
    message = get_object_or_404(Message, pk=message_id, practice=practice, kind=Kind.AUTOMATION)
    context = {
        "nav": "recalls",
        "message": message,
        "outcome": recall_outcome(message),
        "back": reverse("staff-recalls") + "?" + urlencode({"category": message.category}),
    }
    template = "staff/_recalls_outcome.html" if request.htmx else "staff/recalls_sent.html"  # type: ignore[attr-defined]
    return render(request, template, context)


urlpatterns = [
    path("recalls/", recall_list, name="staff-recalls"),
    path("recalls/send", send_recall, name="staff-recall-send"),
    path("recalls/sent/<uuid:message_id>/", recall_sent, name="staff-recall-sent"),
]
