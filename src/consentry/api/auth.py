"""Who is asking: an API key names its practice, and its label is the actor of every change it makes."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer

from consentry.patients.models import Practice
from consentry.patients.services import api_key_for


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer csk_...``: every object the request reaches belongs to the key's practice."""

    def authenticate(self, request: HttpRequest, token: str) -> Practice | None:
        key = api_key_for(token)
        if key is None:
            return None
        request.practice = key.practice  # type: ignore[attr-defined]
        # Who acts, in the ledger, in conversations and on messages: the API key, by its label.
        request.actor = f"api:{key.label or 'key'}"  # type: ignore[attr-defined]
        return key.practice


def practice_of(request: HttpRequest) -> Practice:
    """The practice of the request's API key."""
    return request.auth  # type: ignore[attr-defined]


def actor_of(request: HttpRequest) -> str:
    """Who acts, as recorded: ``api:<the key's label>``."""
    return request.actor  # type: ignore[attr-defined]
