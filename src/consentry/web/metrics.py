"""Operations: ``/healthz`` for load balancers and probes, ``/metrics`` for Prometheus.

``/healthz`` is public on purpose and says nothing about anyone: whether the
database answers, how long ago a worker last beat, how long the oldest due
delivery has waited. 503 only when the database does not answer (a web
process without a database cannot serve; one without workers still can).

``/metrics`` (prometheus-client) reads its figures from the database at each
scrape, so every process reports the same totals: deliveries by status and
reason, the queue's depth and age, opt-outs by source, and the webhooks'
latency in this process. It requires ``Authorization: Bearer
$CONSENTRY_METRICS_TOKEN``; without a token set, only a direct request from
this machine is answered (and none when a TLS proxy on this machine is
trusted, since its requests come from loopback too).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

WEBHOOK_LATENCY = Histogram(
    "consentry_webhook_seconds",
    "Time to answer a provider's webhook, in this process.",
    ["webhook"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _age(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else max((now - then).total_seconds(), 0.0)


def health(request: HttpRequest) -> JsonResponse:
    from consentry.keywords.models import InboundMessage
    from consentry.messaging.models import Delivery, WorkerBeat
    from consentry.vocabulary import Status

    now = datetime.now(UTC)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        last_beat = WorkerBeat.objects.order_by("-beat_at").values_list("beat_at", flat=True).first()
        oldest_due = Delivery.objects.filter(
            Q(not_before__isnull=True) | Q(not_before__lte=now),
            status__in=[Status.PENDING, Status.DEFERRED],
            attempted_at__isnull=True,
        ).aggregate(at=Min("updated_at"))["at"]
        oldest_unread = InboundMessage.objects.filter(processed_at__isnull=True).aggregate(at=Min("received_at"))["at"]
    except DatabaseError:
        return JsonResponse({"ok": False, "database": "unreachable"}, status=503)
    return JsonResponse(
        {
            "ok": True,
            "database": "ok",
            "worker_heartbeat_age_seconds": _age(last_beat, now),
            "oldest_due_delivery_age_seconds": _age(oldest_due, now),
            # A received text waits for a worker's reader (a STOP holds sends meanwhile): seconds at most.
            "oldest_unread_text_age_seconds": _age(oldest_unread, now),
        }
    )


class DatabaseFigures:
    """A prometheus-client collector that reads the totals from the database at each scrape."""

    def describe(self):
        # Without it, registering would call collect(), and so query the database, at import.
        return []

    def collect(self):
        from django_tasks.base import TaskResultStatus
        from django_tasks_db.models import DBTaskResult

        from consentry.consent.models import ConsentEvent, EmailState, SmsState, Subject
        from consentry.keywords.models import InboundMessage
        from consentry.messaging.models import Delivery, WorkerBeat
        from consentry.vocabulary import Status

        now = datetime.now(UTC)
        deliveries = GaugeMetricFamily(
            "consentry_deliveries", "Deliveries by status and reason.", labels=["status", "reason"]
        )
        for row in Delivery.objects.values("status", "reason").annotate(n=Count("pk")).order_by():
            deliveries.add_metric([row["status"], row["reason"] or ""], row["n"])
        yield deliveries

        waiting = Delivery.objects.filter(status__in=[Status.PENDING, Status.DEFERRED], attempted_at__isnull=True)
        due = waiting.filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        figures = due.aggregate(n=Count("pk"), oldest=Min("updated_at"))
        yield GaugeMetricFamily(
            "consentry_queue_due_deliveries", "Deliveries due and not yet handed over.", value=figures["n"]
        )
        yield GaugeMetricFamily(
            "consentry_queue_oldest_due_seconds",
            "How long the oldest due delivery has waited (0 when none).",
            value=_age(figures["oldest"], now) or 0.0,
        )
        tasks = DBTaskResult.objects.filter(status=TaskResultStatus.READY).aggregate(
            n=Count("pk"), oldest=Min("enqueued_at")
        )
        yield GaugeMetricFamily("consentry_tasks_ready", "Tasks queued for a worker.", value=tasks["n"])
        unread = InboundMessage.objects.filter(processed_at__isnull=True).aggregate(oldest=Min("received_at"))
        yield GaugeMetricFamily(
            "consentry_oldest_unread_text_seconds",
            "How long the oldest received text has waited for a worker to read it (0 when none).",
            value=_age(unread["oldest"], now) or 0.0,
        )
        beat = WorkerBeat.objects.order_by("-beat_at").values_list("beat_at", flat=True).first()
        age = _age(beat, now)
        yield GaugeMetricFamily(
            "consentry_worker_heartbeat_age_seconds",
            "Since the last beat of any worker (-1: none ever).",
            value=-1.0 if age is None else age,
        )

        opt_outs = GaugeMetricFamily(
            "consentry_opt_outs",
            "Opt-outs, unsubscribes and bounces recorded, by source.",
            labels=["channel", "source"],
        )
        stopped = Q(subject=Subject.SMS, state=SmsState.OPTED_OUT) | Q(
            subject=Subject.EMAIL, state__in=[EmailState.UNSUBSCRIBED, EmailState.BOUNCED]
        )
        for row in ConsentEvent.objects.filter(stopped).values("subject", "source").annotate(n=Count("pk")).order_by():
            opt_outs.add_metric([row["subject"], row["source"]], row["n"])
        yield opt_outs


# Registered once with prometheus-client's default registry, beside this process's own metrics.
REGISTRY.register(DatabaseFigures())


def _allowed(request: HttpRequest) -> bool:
    token = settings.CONSENTRY_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    try:
        local = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        local = False
    return local and not settings.CONSENTRY_TRUSTED_PROXY


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        response = HttpResponse(
            "metrics need Authorization: Bearer <CONSENTRY_METRICS_TOKEN>\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


class WebhookTimingMiddleware:
    """Times every request under /webhooks/ into ``consentry_webhook_seconds`` (labelled by its URL name)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/webhooks/"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        name = (match.url_name or match.view_name) if match else "unknown"
        WEBHOOK_LATENCY.labels(webhook=name or "unknown").observe(time.perf_counter() - started)
        return response
