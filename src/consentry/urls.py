from django.urls import include, path

from consentry.admin import admin_site
from consentry.api.v1 import api
from consentry.messaging import email_events
from consentry.web import metrics, patient, sandbox, views, webhooks

urlpatterns = [
    # Twilio's webhooks first: a STOP's request is resolved before the staff app's many routes are tried.
    path("webhooks/twilio/sms", webhooks.twilio_sms, name="twilio-sms"),
    path("webhooks/twilio/status", webhooks.twilio_status, name="twilio-status"),
    path("", views.index, name="index"),
    path("", include("consentry.web.staff.urls")),
    path("admin/", admin_site.urls),
    path("healthz", metrics.health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("webhooks/anymail/", include(email_events.webhook_urls())),  # ESP tracking and inbound: anymail's views
    path("email/unsubscribe/<str:token>", patient.unsubscribe, name="email-unsubscribe"),
    path("email/resubscribe/<str:token>", patient.resubscribe, name="email-resubscribe"),
    path("portal/<str:token>", patient.portal, name="portal"),
    path("sandbox/outbox", views.sandbox_outbox, name="sandbox-outbox"),
    path("sandbox/", sandbox.page, name="sandbox"),
    path("sandbox/reply", sandbox.reply, name="sandbox-reply"),
]
