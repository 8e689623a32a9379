"""Message types: the practice's notification grid, custom categories, quiet-hours exemptions."""

from __future__ import annotations

from django.http import Http404
from ninja import Field, Router, Schema, Status

from consentry.api.auth import practice_of
from consentry.api.schemas import In
from consentry.patients.categories import create_category, set_notification_channels
from consentry.patients.models import Category

router = Router(tags=["categories"])


class CategoryOut(Schema):
    key: str
    marketing: bool
    notification_channels: list[str]
    patient_can_disable: bool
    quiet_hours_exempt: bool


class CategoryIn(In):
    key: str = Field(max_length=64)
    marketing: bool = False
    notification_channels: list[str] = Field(default_factory=list, max_length=4)


class CategoryGridIn(In):
    notification_channels: list[str] = Field(max_length=4)
    quiet_hours_exempt: bool | None = None


def _category_out(c: Category) -> dict:
    return {
        "key": c.key,
        "marketing": c.marketing,
        "notification_channels": c.notification_channels,
        "patient_can_disable": c.patient_can_disable,
        "quiet_hours_exempt": c.quiet_hours_exempt,
    }


@router.get("", response=list[CategoryOut])
def categories_list(request):
    return [_category_out(c) for c in Category.objects.filter(practice=practice_of(request)).order_by("pk")]


@router.post("", response={201: CategoryOut})
def categories_create(request, payload: CategoryIn):
    category = create_category(
        practice=practice_of(request),
        key=payload.key,
        marketing=payload.marketing,
        notification_channels=payload.notification_channels,
    )
    return Status(201, _category_out(category))


@router.put("/{key}", response=CategoryOut)
def categories_update(request, key: str, payload: CategoryGridIn):
    category = Category.objects.filter(practice=practice_of(request), key=key).first()
    if category is None:
        raise Http404("no such category")
    return _category_out(
        set_notification_channels(
            category=category,
            notification_channels=payload.notification_channels,
            quiet_hours_exempt=payload.quiet_hours_exempt,
        )
    )
