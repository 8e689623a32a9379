"""The Blocked Communications list: numbers blocked per category."""

from __future__ import annotations

from django.http import Http404
from ninja import Field, Router, Schema, Status

from consentry.api.auth import actor_of, practice_of
from consentry.api.schemas import In
from consentry.consent import services as consent
from consentry.consent.models import Block, Source
from consentry.patients.addresses import normalize_phone

router = Router(tags=["consent"])


class BlockIn(In):
    number: str = Field(max_length=40)
    categories: list[str] = Field(max_length=100)


class BlockCategoriesIn(In):
    categories: list[str] = Field(max_length=100)


class BlockOut(Schema):
    number: str
    categories: list[str]


def _set_block(request, number: str, categories: list[str]) -> dict:
    practice = practice_of(request)
    normalized = normalize_phone(number, region=practice.region, field="number").number
    consent.set_block(
        practice=practice,
        number=normalized,
        categories=categories,
        source=Source.API,
        actor=actor_of(request),
        evidence={"via": "api"},
    )
    return {"number": normalized, "categories": sorted(set(categories))}


@router.get("", response=list[BlockOut])
def blocks_list(request):
    return [
        {"number": n, "categories": c}
        for n, c in Block.objects.filter(practice=practice_of(request))
        .order_by("number")
        .values_list("number", "categories")
    ]


@router.post("", response={201: BlockOut})
def blocks_create(request, payload: BlockIn):
    return Status(201, _set_block(request, payload.number, payload.categories))


@router.put("/{number}", response=BlockOut)
def blocks_update(request, number: str, payload: BlockCategoriesIn):
    return _set_block(request, number, payload.categories)


@router.delete("/{number}", response={204: None})
def blocks_delete(request, number: str):
    practice = practice_of(request)
    normalized = normalize_phone(number, region=practice.region, field="number").number
    if not Block.objects.filter(practice=practice, number=normalized).exists():
        raise Http404("that number is not blocked")
    _set_block(request, normalized, [])
    return Status(204, None)
