"""A practice's webhook endpoints: registered (the secret shown once), listed, deleted, and their log.

An endpoint must lead to the internet over https://: a URL naming this
machine or a private network, or a name that resolves to one, is refused
when it is registered, and checked again when each event goes (DNS can
change). ``CONSENTRY_WEBHOOKS_ALLOW_PRIVATE`` lifts both, and allows http://,
for an EHR on the practice's own network.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Count

from consentry import netguard
from consentry.cursors import cursor_of, key_of
from consentry.errors import InvalidInput
from consentry.patients.models import Practice

from .models import DeliveryState, EventType, WebhookDelivery, WebhookEndpoint

MAX_ENDPOINTS = 10
URL_MAX_LENGTH = 2048
DESCRIPTION_MAX_LENGTH = 200
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def clean_url(url: str) -> str:
    """The endpoint's URL, checked; else ``InvalidInput`` on ``url`` saying why."""
    url = url.strip()
    if len(url) > URL_MAX_LENGTH:
        raise InvalidInput("url", f"must be at most {URL_MAX_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidInput("url", "must not contain spaces or control characters")
    allow_private = settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE
    try:
        parts = urlsplit(url)
        port = parts.port
        requests.PreparedRequest().prepare_url(url, None)
    except (ValueError, requests.RequestException):
        raise InvalidInput("url", "is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("url", "must be an https:// URL")
    if parts.scheme != "https" and not allow_private:
        raise InvalidInput("url", "must be an https:// URL (http:// only where the operator allows private addresses)")
    if parts.username or parts.password:
        raise InvalidInput("url", "must not carry credentials: each event is signed instead")
    if parts.fragment:
        raise InvalidInput("url", "must not have a #fragment")
    if not allow_private:
        why = netguard.private_host(parts.hostname, resolve=True, port=port or 443)
        if why:
            raise InvalidInput(
                "url",
                f"must lead to the internet ({why}); an operator may allow private addresses "
                "with CONSENTRY_WEBHOOKS_ALLOW_PRIVATE=1",
            )
    return url


def clean_events(events: Iterable[str]) -> list[str]:
    """The event types, each once, in their own order; ``InvalidInput`` on ``events`` for an unknown one."""
    wanted = list(events)
    if unknown := [e for e in wanted if e not in EventType.values]:
        raise InvalidInput("events", f"unknown event type {unknown[0]!r}: one of {', '.join(EventType.values)}")
    if not wanted:
        raise InvalidInput("events", "name at least one event type")
    return [e for e in EventType.values if e in wanted]


def create_endpoint(
    *, practice: Practice, url: str, events: Iterable[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; (it, its signing secret). The secret is stored encrypted and never shown again."""
    events = clean_events(events)
    description = description.strip()
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidInput("description", f"must be at most {DESCRIPTION_MAX_LENGTH} characters")
    url = clean_url(url)
    secret = new_secret()
    with transaction.atomic():
        Practice.objects.select_for_update().only("id").get(pk=practice.pk)  # one registration at a time
        endpoints = WebhookEndpoint.objects.filter(practice=practice)
        if endpoints.filter(url=url).exists():
            raise InvalidInput("url", "is registered already: delete it first to change its events")
        if endpoints.count() >= MAX_ENDPOINTS:
            raise InvalidInput("url", f"this practice has {MAX_ENDPOINTS} endpoints already: delete one first")
        endpoint = WebhookEndpoint.objects.create(
            practice=practice, url=url, events=events, description=description, secret=secret
        )
    return endpoint, secret


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its log: events still waiting for it are never sent."""
    endpoint.delete()


@dataclass(frozen=True)
class LogPage:
    deliveries: list[WebhookDelivery]
    next_cursor: str | None


def delivery_log(endpoint: WebhookEndpoint, *, status: str = "", cursor: str = "", limit: int = 50) -> LogPage:
    """The endpoint's events, newest first, a page at a time."""
    rows = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-pk")
    if status:
        if status not in DeliveryState.values:
            raise InvalidInput("status", f"must be one of {', '.join(DeliveryState.values)}")
        rows = rows.filter(status=status)
    if cursor:
        rows = rows.filter(pk__lt=key_of(cursor, _row_id))
    page = list(rows[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return LogPage(page, cursor_of(page[-1].pk) if more else None)


def _row_id(text: str) -> int:
    value = int(text)
    if not 0 < value < 2**63:
        raise ValueError("out of range")
    return value


def summary(endpoint: WebhookEndpoint) -> dict[str, int]:
    """How many of the endpoint's events are pending, delivered, failed."""
    counts = dict.fromkeys(DeliveryState.values, 0)
    rows = WebhookDelivery.objects.filter(endpoint=endpoint).values("status").annotate(n=Count("pk")).order_by()
    counts.update({row["status"]: row["n"] for row in rows})
    return counts
