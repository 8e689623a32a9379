"""The default provider: records every message locally, reaches no network."""

from __future__ import annotations

from .base import Outbound, SendResult
from .models import SandboxMessage


class SandboxProvider:
    name = "sandbox"
    # In-app notices always go to the portal's own store (the in_app provider), never here.
    channels = frozenset({"sms", "voice", "email"})

    def __init__(self, practice=None) -> None:
        self.practice = practice

    def send(self, message: Outbound) -> SendResult:
        row = SandboxMessage.objects.create(
            practice_id=message.practice_id,
            delivery_id=message.delivery_id,
            channel=message.channel,
            to=message.to,
            sender=message.sender,
            subject=message.subject,
            body=message.body,
            html=message.html,
            headers=message.headers,
        )
        # The sandbox's handset always answers: delivery is confirmed at once.
        return SendResult(provider_ref=f"SB{row.pk:032d}", status="delivered")
