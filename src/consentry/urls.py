from django.urls import path

from consentry.api.v1 import api
from consentry.web import sandbox, views, webhooks

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.health, name="health"),
    path("api/v1/", api.urls),
    path("webhooks/twilio/sms", webhooks.twilio_sms, name="twilio-sms"),
    path("webhooks/twilio/status", webhooks.twilio_status, name="twilio-status"),
    path("sandbox/outbox", views.sandbox_outbox, name="sandbox-outbox"),
    path("sandbox/", sandbox.page, name="sandbox"),
    path("sandbox/reply", sandbox.reply, name="sandbox-reply"),
]
