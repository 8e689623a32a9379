"""Messages: one request to reach patients, answered with the deliveries decided for each.

An answer lists at most ``INLINE_DELIVERIES`` (1,000) deliveries inline; every answer counts them all
(``report``) and gives the URL that pages through every one (``deliveries_url``), so a broadcast to a
whole practice answers with its counts, not a million rows."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from enum import StrEnum

from django.http import Http404
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from consentry.api.auth import SEND, actor_of, owned_or_404, practice_of
from consentry.api.errors import ErrorOut, error
from consentry.api.examples import DELIVERY_CSV_EXAMPLE
from consentry.api.schemas import In, as_utc
from consentry.csv_export import csv_download
from consentry.messaging.models import Delivery, Message
from consentry.messaging.planning import INLINE_DELIVERIES, REQUEST_KINDS, Unacknowledged, create_message
from consentry.messaging.selectors import (
    DELIVERY_EXPORT_FIELDS,
    MESSAGE_DELIVERY_FIELDS,
    Report,
    delivery_export_rows,
    list_messages,
    message_delivery_page,
    message_report,
)
from consentry.vocabulary import Channel, Kind, Reason
from consentry.vocabulary import Status as DeliveryStatus

# The export's answer, as the document declares it: a header line of DELIVERY_EXPORT_FIELDS, then rows.
CSV_CONTENT = {"text/csv": {"schema": {"type": "string"}, "example": DELIVERY_CSV_EXAMPLE}}

router = Router(tags=["messages"])

# The kinds of message a request may ask for (the others are the service's own: keyword replies, opt-in emails).
RequestKind = StrEnum("RequestKind", {kind.name: kind.value for kind in REQUEST_KINDS})  # type: ignore[misc]


class EmailContent(In):
    subject: str = ""
    text: str = ""
    html: str = ""


class ContentIn(In):
    model_config = {"extra": "forbid"}
    sms: str | None = None
    voice: str | None = None
    email: EmailContent | None = None
    in_app: str | None = None


class MessageIn(In):
    kind: RequestKind
    category: str
    patient_ids: list[str] = Field(min_length=1, max_length=200_000)
    content: ContentIn
    acknowledge_warnings: bool = Field(
        False,
        description="Send even when the plan carries warnings (a transactional message to a patient whose "
        "PMS marketing consent is no). Without it, such a request answers 409 with the warnings and "
        "queues nothing.",
    )


class WarningsOut(ErrorOut):
    """``error.code`` is ``unacknowledged_warnings``."""

    warnings: dict[str, list[str]]  # patient id -> warnings (no_marketing_consent)


class DeliveryOut(Schema):
    patient_id: str | None
    channel: Channel
    address: str | None
    status: DeliveryStatus
    reason: Reason | None
    not_before: str | None = None  # not sent before (UTC, ISO 8601): quiet hours, a backoff, the sender's pace


class ReportOut(Schema):
    """Where a message's deliveries stand: the delivery report."""

    total: int
    by_status: dict[str, int]  # every status, zeros included
    by_reason: dict[str, int]  # skipped, failed and undelivered deliveries, by reason
    by_channel: dict[str, int]


class MessageOut(Schema):
    id: str
    kind: Kind
    category: str
    created_at: str
    deliveries: list[DeliveryOut] = Field(
        description=f"The first {INLINE_DELIVERIES:,} deliveries in the order they were planned (every one "
        "when there are no more): `deliveries_truncated` says whether there are more, `deliveries_url` pages "
        "through all of them and `report` counts them all."
    )
    warnings: dict[str, list[str]] = Field(default_factory=dict)
    report: ReportOut
    deliveries_truncated: bool = Field(description=f"The message has more than {INLINE_DELIVERIES:,} deliveries")
    deliveries_url: str = Field(description="Every delivery of the message, a page at a time")


class MessageDeliveryPageOut(Schema):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


def _deliveries_out(rows) -> list[dict]:
    return [
        {
            "patient_id": str(patient_id) if patient_id else None,
            "channel": channel,
            "address": address or None,
            "status": status,
            "reason": reason or None,
            "not_before": not_before.isoformat() if not_before else None,
        }
        for patient_id, channel, address, status, reason, not_before in rows
    ]


def _message_out(request, message: Message, rows: list, report: Report, warnings=None) -> dict:
    return {
        "id": str(message.pk),
        "kind": message.kind,
        "category": message.category,
        "created_at": message.created_at.isoformat(),
        "deliveries": _deliveries_out(rows),
        "warnings": warnings or {},
        "report": asdict(report),
        "deliveries_truncated": report.total > len(rows),
        "deliveries_url": request.build_absolute_uri(
            reverse("api-v1:messages_deliveries", kwargs={"message_id": message.pk})
        ),
    }


@router.post("", response={202: MessageOut, 409: WarningsOut}, auth=SEND)
def messages_create(request, payload: MessageIn):
    """Send a message. An ``Idempotency-Key`` header makes a retried request safe:
    the same key and body answer with the first message, never a second send.

    A plan with warnings answers 409 with them and queues nothing; send it again with
    ``"acknowledge_warnings": true`` to proceed."""
    content = payload.content.model_dump(exclude_none=True)
    try:
        planned = create_message(
            practice=practice_of(request),
            kind=payload.kind,
            category=payload.category,
            patient_ids=payload.patient_ids,
            content=content,
            actor=actor_of(request),
            idempotency_key=request.headers.get("Idempotency-Key", "").strip(),
            acknowledge_warnings=payload.acknowledge_warnings,
        )
    except Unacknowledged as exc:
        return Status(409, error("unacknowledged_warnings", str(exc), "acknowledge_warnings", warnings=exc.warnings))
    rows = [tuple(getattr(d, f) for f in MESSAGE_DELIVERY_FIELDS) for d in planned.deliveries]
    return Status(202, _message_out(request, planned.message, rows, planned.report, planned.warnings))


class MessageSummaryOut(Schema):
    id: str
    kind: Kind
    category: str
    actor: str
    created_at: str
    report: ReportOut


class MessagePageOut(Schema):
    messages: list[MessageSummaryOut]
    next_cursor: str | None


@router.get("", response=MessagePageOut)
def messages_list(
    request,
    kind: RequestKind | None = None,
    category: str = Query("", max_length=64),
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    status: DeliveryStatus | None = Query(None, description="Only messages with a delivery in this status"),
    cursor: str = Query("", max_length=200),
    limit: int = Query(50, ge=1, le=500),
):
    """The practice's messages newest first, each with its delivery report (counts by status, by skip
    reason, by channel)."""
    page = list_messages(
        practice_of(request),
        kind=kind or "",
        category=category,
        created_after=as_utc(created_after, "created_after"),
        created_before=as_utc(created_before, "created_before"),
        status=status or "",
        cursor=cursor,
        limit=limit,
    )
    return {
        "messages": [
            {
                "id": str(m.pk),
                "kind": m.kind,
                "category": m.category,
                "actor": m.actor,
                "created_at": m.created_at.isoformat(),
                "report": asdict(page.reports[m.pk]),
            }
            for m in page.messages
        ],
        "next_cursor": page.next_cursor,
    }


def _sent_by_the_practice(request, message_id: str) -> Message:
    message = owned_or_404(Message, request, message_id)
    if message.kind in ("keyword_reply", "consent_request"):  # the service's own messages
        raise Http404("no such message")
    return message


@router.get(
    "/{message_id}/deliveries.csv",
    response={200: None},
    openapi_extra={"responses": {200: {"description": "The deliveries, one a row", "content": CSV_CONTENT}}},
)
def messages_export(request, message_id: str):
    """Every delivery of the message as CSV: who, on which channel and address, what became of it."""
    message = _sent_by_the_practice(request, message_id)
    return csv_download(f"message-{message.pk}.csv", DELIVERY_EXPORT_FIELDS, delivery_export_rows(message))


@router.get("/{message_id}/deliveries", response=MessageDeliveryPageOut)
def messages_deliveries(
    request,
    message_id: str,
    cursor: str = Query("", max_length=200),
    limit: int = Query(500, ge=1, le=500),
):
    """Every delivery of the message in the order they were planned, a page at a time (``next_cursor``
    names the next page; null on the last)."""
    message = _sent_by_the_practice(request, message_id)
    page = message_delivery_page(message, cursor=cursor, limit=limit)
    return {"deliveries": _deliveries_out(page.deliveries), "next_cursor": page.next_cursor}


@router.get("/{message_id}", response=MessageOut)
def messages_get(request, message_id: str):
    """The message with its delivery report and its first deliveries (``deliveries_url`` pages through
    every one)."""
    message = _sent_by_the_practice(request, message_id)
    rows = list(
        Delivery.objects.filter(message=message)
        .order_by("pk")
        .values_list(*MESSAGE_DELIVERY_FIELDS)[:INLINE_DELIVERIES]
    )
    return _message_out(request, message, rows, message_report(message))
