"""A practice's message types: its own categories and the notification grid of each."""

from __future__ import annotations

from consentry.errors import InvalidInput

from .models import Category, Practice

CHANNELS = ("in_app", "sms", "voice", "email")


def _clean_channels(channels, field="notification_channels") -> list[str]:
    if not isinstance(channels, (list, tuple)) or not all(isinstance(c, str) for c in channels):
        raise InvalidInput(field, "must be a list of channels")
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise InvalidInput(field, f"unknown channel(s): {', '.join(unknown)}")
    return [c for c in CHANNELS if c in channels]


def create_category(*, practice: Practice, key: str, marketing: bool, notification_channels: list[str]) -> Category:
    import re

    if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{1,63}", key):
        raise InvalidInput("key", "must be lowercase letters, digits and underscores, starting with a letter")
    if Category.objects.filter(practice=practice, key=key).exists():
        raise InvalidInput("key", f"category {key!r} already exists")
    return Category.objects.create(
        practice=practice, key=key, marketing=marketing, notification_channels=_clean_channels(notification_channels)
    )


def set_notification_channels(
    *, category: Category, notification_channels: list[str], quiet_hours_exempt: bool | None = None
) -> Category:
    """Change the practice's default grid for one notification type (and whether quiet hours hold it)."""
    category.notification_channels = _clean_channels(notification_channels)
    if quiet_hours_exempt is not None:
        category.quiet_hours_exempt = quiet_hours_exempt
    category.save(update_fields=["notification_channels", "quiet_hours_exempt"])
    return category
