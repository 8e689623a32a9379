"""The one narrow interface every provider implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings


@dataclass(frozen=True)
class Outbound:
    practice_id: str
    delivery_id: int
    channel: str
    to: str
    sender: str
    body: str
    subject: str = ""
    html: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_ref: str
    # "sent" (handed over; a status callback will follow) or "delivered".
    status: str


class ProviderError(Exception):
    def __init__(self, message: str, *, code: str = "", transient: bool = False):
        super().__init__(message)
        self.code = code
        self.transient = transient


class Provider(Protocol):
    name: str

    def send(self, message: Outbound) -> SendResult: ...


def provider_for(channel: str) -> Provider:
    from .sandbox import SandboxProvider

    name = settings.CONSENTRY_PROVIDER
    if name == "sandbox":
        return SandboxProvider()
    raise ProviderError(f"unknown provider {name!r}", code="provider_unknown")
