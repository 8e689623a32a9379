"""Webhook endpoints: where the practice's signed outbound events go, and what became of each.

An endpoint subscribes to event types; each event is POSTed to it as JSON,
signed with the endpoint's secret by the Standard Webhooks scheme (headers
``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), and retried for
about a day until it answers 2xx. The secret (``whsec_...``) is in the answer
that creates the endpoint, and nowhere else. See docs/webhooks.md.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from ninja import Field, Query, Router, Schema, Status

from consentry.api.auth import owned_or_404, practice_of
from consentry.api.schemas import In
from consentry.events.endpoints import (
    DESCRIPTION_MAX_LENGTH,
    URL_MAX_LENGTH,
    create_endpoint,
    delete_endpoint,
    delivery_log,
    summary,
)
from consentry.events.models import DeliveryState, EventType, WebhookDelivery, WebhookEndpoint

router = Router(tags=["webhook-endpoints"])


class EndpointIn(In):
    url: str = Field(max_length=URL_MAX_LENGTH, description="https://, on the internet")
    events: list[EventType] = Field(min_length=1, max_length=len(EventType), description="The event types it gets")
    description: str = Field("", max_length=DESCRIPTION_MAX_LENGTH)


class CountsOut(Schema):
    pending: int
    delivered: int
    failed: int


class EndpointOut(Schema):
    id: str
    url: str
    events: list[EventType]
    description: str
    created_at: str
    deliveries: CountsOut


class NewEndpointOut(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...): shown in this answer only.")


class AttemptOut(Schema):
    at: str
    status_code: int | None
    error: str
    ms: int


class EventDeliveryOut(Schema):
    id: int
    event_id: str = Field(description="The webhook-id header")
    type: EventType
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str
    created_at: str
    delivered_at: str | None
    attempt_log: list[AttemptOut]
    payload: dict[str, Any] = Field(description="The body sent: type, timestamp, data")


class EventDeliveryPageOut(Schema):
    deliveries: list[EventDeliveryOut]
    next_cursor: str | None


def _endpoint_out(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": str(endpoint.pk),
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "created_at": endpoint.created_at.isoformat(),
        "deliveries": summary(endpoint),
    }


def _delivery_out(row: WebhookDelivery) -> dict:
    return {
        "id": row.pk,
        "event_id": row.event_id,
        "type": row.type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": row.created_at.isoformat(),
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
        "attempt_log": row.attempt_log,
        "payload": json.loads(row.payload),
    }


@router.post("", response={201: NewEndpointOut})
def webhook_endpoints_create(request, payload: EndpointIn):
    """Register an endpoint for these event types. The answer holds its signing secret, shown this once."""
    endpoint, secret = create_endpoint(
        practice=practice_of(request),
        url=payload.url,
        events=[e.value for e in payload.events],
        description=payload.description,
    )
    return Status(201, {**_endpoint_out(endpoint), "secret": secret})


@router.get("", response=list[EndpointOut])
def webhook_endpoints_list(request):
    """The practice's endpoints, oldest first (never their secrets)."""
    return [
        _endpoint_out(e) for e in WebhookEndpoint.objects.filter(practice=practice_of(request)).order_by("created_at")
    ]


@router.get("/{endpoint_id}", response=EndpointOut)
def webhook_endpoints_get(request, endpoint_id: str):
    return _endpoint_out(owned_or_404(WebhookEndpoint, request, endpoint_id))


@router.delete("/{endpoint_id}", response={204: None})
def webhook_endpoints_delete(request, endpoint_id: str):
    """Delete the endpoint and its log: nothing more is sent to it, not even events still being retried."""
    delete_endpoint(owned_or_404(WebhookEndpoint, request, endpoint_id))
    return Status(204, None)


@router.get("/{endpoint_id}/deliveries", response=EventDeliveryPageOut)
def webhook_endpoints_deliveries(
    request,
    endpoint_id: str,
    status: DeliveryState | None = Query(None, description="pending, delivered or failed"),
    cursor: str = Query("", max_length=200),
    limit: int = Query(50, ge=1, le=200),
):
    """The endpoint's delivery log, newest first: each event, its attempts and what each got."""
    endpoint = owned_or_404(WebhookEndpoint, request, endpoint_id)
    page = delivery_log(endpoint, status=status or "", cursor=cursor, limit=limit)
    return {"deliveries": [_delivery_out(d) for d in page.deliveries], "next_cursor": page.next_cursor}
