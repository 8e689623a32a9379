"""The in-app channel: a notice stored for the patient portal, pushed to the patient's browsers."""

from __future__ import annotations

import uuid

from django.db import transaction

from consentry.patients.models import Patient

from . import webpush
from .base import Outbound, ProviderError, SendResult
from .models import InAppNotice, PushSubscription


class InAppProvider:
    name = "in_app"
    channels = frozenset({"in_app"})

    def __init__(self, practice=None) -> None:
        self.practice = practice

    def send(self, message: Outbound) -> SendResult:
        try:
            patient_id = uuid.UUID(message.to)
        except ValueError:
            raise ProviderError(f"not a patient id: {message.to!r}", code="in_app_no_patient") from None
        with transaction.atomic():
            if not Patient.objects.filter(pk=patient_id, practice_id=message.practice_id).exists():
                raise ProviderError("no such patient at this practice", code="in_app_no_patient")
            notice, created = InAppNotice.objects.get_or_create(
                delivery_id=message.delivery_id,
                defaults={
                    "practice_id": message.practice_id,
                    "patient_id": patient_id,
                    "category": message.category,
                    "subject": message.subject,
                    "body": message.body,
                },
            )
            # Stored notice and push task commit together: the worker pushes
            # only a notice that exists, and a stored notice is always pushed.
            if created and webpush.enabled() and PushSubscription.objects.filter(patient_id=patient_id).exists():
                webpush.push_notice.enqueue(notice.pk)
        # The stored notice is the delivery; push is on top of it.
        return SendResult(provider_ref=f"IN{notice.pk:032d}", status="delivered")
