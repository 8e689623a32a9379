"""API keys: several per practice, each with a label and scopes; the secret is shown once, at creation."""

from __future__ import annotations

from django.http import Http404
from ninja import Field, Path, Router, Schema, Status

from consentry.api.auth import practice_of
from consentry.api.schemas import In
from consentry.errors import InvalidInput
from consentry.patients.models import ApiKey
from consentry.patients.practices import create_api_key, describe_api_key, revoke_api_key
from consentry.vocabulary import Scope

router = Router(tags=["keys"])


class KeyIn(In):
    label: str = Field("", max_length=100, description="Which system uses it, e.g. EHR sync")
    scopes: list[Scope] = Field(min_length=1, max_length=3)


class KeyOut(Schema):
    id: int
    label: str
    scopes: list[Scope]
    created_at: str
    revoked_at: str | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret: shown in this answer only (only its hash is stored).")


@router.post("", response={201: NewKeyOut})
def keys_create(request, payload: KeyIn):
    key, secret = create_api_key(practice=practice_of(request), label=payload.label, scopes=payload.scopes)
    return Status(201, {**describe_api_key(key), "key": secret})


@router.get("", response=list[KeyOut])
def keys_list(request):
    return [describe_api_key(k) for k in ApiKey.objects.filter(practice=practice_of(request)).order_by("pk")]


@router.delete("/{key_id}", response={204: None})
def keys_revoke(request, key_id: int = Path(..., ge=1, le=2**63 - 1)):
    """Revoke a key: it stops working at once and stays listed, revoked."""
    try:
        revoke_api_key(practice=practice_of(request), key_id=key_id)
    except InvalidInput:
        raise Http404("no such API key") from None
    return Status(204, None)
