"""Who is asking: an API key names its practice, its label is the actor of every change it makes, and
its scopes say what it may do.

Every operation needs one scope: ``read`` for a GET, ``manage`` for any other change, unless the
operation says otherwise (``auth=SEND`` on those that send a message). A key without it is refused
with 403; a key of another practice finds nothing (404, see ``owned_or_404``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpRequest
from ninja.errors import HttpError
from ninja.security import HttpBearer

from consentry.patients.models import Practice
from consentry.patients.practices import api_key_for
from consentry.vocabulary import Scope


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer csk_...``: every object the request reaches belongs to the key's practice."""

    def __init__(self, scope: Scope | None = None) -> None:
        super().__init__()
        self.scope = scope  # None: read for a GET, manage for any other method

    def needed(self, request: HttpRequest) -> Scope:
        if self.scope is not None:
            return self.scope
        return Scope.READ if request.method in ("GET", "HEAD") else Scope.MANAGE

    def authenticate(self, request: HttpRequest, token: str) -> Practice | None:
        key = api_key_for(token)
        if key is None:
            return None
        needed = self.needed(request)
        if needed not in key.scopes:
            raise HttpError(403, f"this API key lacks the {needed} scope")
        request.practice = key.practice  # type: ignore[attr-defined]
        # Who acts, in the ledger, in conversations and on messages: the API key, by its label.
        request.actor = f"api:{key.label or 'key'}"  # type: ignore[attr-defined]
        return key.practice


# For the operations that send something (a message, a reply, an opt-in email).
SEND = ApiKeyAuth(Scope.SEND)


def practice_of(request: HttpRequest) -> Practice:
    """The practice of the request's API key."""
    return request.auth  # type: ignore[attr-defined]


def actor_of(request: HttpRequest) -> str:
    """Who acts, as recorded: ``api:<the key's label>``."""
    return request.actor  # type: ignore[attr-defined]


def owned_or_404(model: Any, request: HttpRequest, object_id: str, **filters: Any) -> Any:
    """The practice's object with this id; anything else (malformed, another practice's, absent) is a 404,
    never a 403 that would confirm it exists."""
    try:
        pk = uuid.UUID(object_id)
    except ValueError:
        raise Http404(f"no such {model._meta.verbose_name}") from None
    obj = model.objects.filter(practice=practice_of(request), pk=pk, **filters).first()
    if obj is None:
        raise Http404(f"no such {model._meta.verbose_name}")
    return obj
