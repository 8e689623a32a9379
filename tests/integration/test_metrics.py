"""/healthz for probes (public on purpose, nothing personal in it) and /metrics for Prometheus (token or local)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.messaging.recovery import beat
from tests.conftest import drain_worker, make_patient, read_received, send_sms_webhook

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
OTHER = "+14155550112"


def _metric(text: str, name: str, **labels) -> float | None:
    """The value of one sample in Prometheus's text format, read with prometheus-client's own parser."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_health_says_the_database_answers_and_how_old_the_worker_beat_and_the_queue_are(client, practice):
    body = client.get("/healthz").json()
    assert body == {
        "ok": True,
        "database": "ok",
        "worker_heartbeat_age_seconds": None,
        "oldest_due_delivery_age_seconds": None,
        "oldest_unread_text_age_seconds": None,
    }
    beat("w1", now=datetime.now(UTC) - timedelta(seconds=30))
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    create_message(
        practice=practice,
        kind="manual",
        category="document_shared",
        patient_ids=[patient.pk],
        content={"sms": "Forms to sign"},
    )
    Delivery.objects.update(updated_at=datetime.now(UTC) - timedelta(seconds=90))
    body = client.get("/healthz").json()
    assert 29 <= body["worker_heartbeat_age_seconds"] < 60
    assert 89 <= body["oldest_due_delivery_age_seconds"] < 120


def test_metrics_count_deliveries_by_status_and_reason_the_queue_opt_outs_and_webhook_latency(client, practice):
    patients = [make_patient(practice, n, phones=[(p, "mobile")]) for n, p in (("Ava", PHONE), ("Ben", OTHER))]
    assert send_sms_webhook(client, body="STOP", sender=OTHER).status_code == 200
    create_message(
        practice=practice,
        kind="manual",
        category="document_shared",
        patient_ids=[p.pk for p in patients],
        content={"sms": "Forms to sign"},
    )
    text = client.get("/metrics").content.decode()
    assert _metric(text, "consentry_deliveries", status="skipped", reason="sms_opted_out") == 1
    # The STOP's confirmation and the text to Ava wait for a worker.
    assert _metric(text, "consentry_deliveries", status="pending", reason="") == 2
    assert _metric(text, "consentry_queue_due_deliveries") == 2
    assert _metric(text, "consentry_tasks_ready") >= 1
    assert _metric(text, "consentry_opt_outs", channel="sms", source="sms_keyword") == 1
    assert _metric(text, "consentry_webhook_seconds_count", webhook="twilio-sms") >= 1
    assert _metric(text, "consentry_worker_heartbeat_age_seconds") == -1
    assert _metric(text, "consentry_oldest_unread_text_seconds") == 0  # the STOP was read
    send_sms_webhook(client, body="See you then", sender=OTHER, sid="SM2", read=False)
    assert _metric(client.get("/metrics").content.decode(), "consentry_oldest_unread_text_seconds") >= 0
    read_received()
    drain_worker()
    text = client.get("/metrics").content.decode()
    assert _metric(text, "consentry_deliveries", status="delivered", reason="") == 2
    assert _metric(text, "consentry_queue_due_deliveries") == 0


def test_metrics_need_the_token_or_a_direct_local_request(practice, settings):
    from_afar = Client(REMOTE_ADDR="203.0.113.7")
    assert from_afar.get("/metrics").status_code == 401
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    settings.CONSENTRY_TRUSTED_PROXY = "127.0.0.1"  # a proxy on this machine: loopback may be anyone
    assert Client().get("/metrics").status_code == 401
    settings.CONSENTRY_METRICS_TOKEN = "s3cret-metrics-token"
    assert from_afar.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert from_afar.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token").status_code == 200
    assert (
        b"consentry_deliveries" in from_afar.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token").content
    )
