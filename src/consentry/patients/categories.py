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


def clean_notification_preferences(
    practice: Practice, overrides: dict, opt_outs
) -> tuple[dict[str, dict[str, bool]], list[str]]:
    """Validate a patient's per-type channel overrides and whole-channel opt-outs."""
    if not isinstance(overrides, dict):
        raise InvalidInput("notification_overrides", "must map a category to {channel: true|false}")
    known = dict(Category.objects.filter(practice=practice).values_list("key", "patient_can_disable"))
    cleaned: dict[str, dict[str, bool]] = {}
    for key, channels in overrides.items():
        field = f"notification_overrides.{key}"
        if key not in known:
            raise InvalidInput(field, f"unknown category {key!r}")
        if not isinstance(channels, dict) or not all(isinstance(v, bool) for v in channels.values()):
            raise InvalidInput(field, "must map a channel to true or false")
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise InvalidInput(field, f"unknown channel(s): {', '.join(unknown)}")
        if not known[key] and not all(channels.values()):
            raise InvalidInput(field, "patients cannot turn off this category")
        cleaned[key] = dict(channels)
    opt_outs = list(dict.fromkeys(opt_outs or ()))
    unknown = sorted(set(opt_outs) - set(CHANNELS) | ({"in_app"} & set(opt_outs)))
    if unknown:
        raise InvalidInput("channel_opt_outs", f"cannot opt out of: {', '.join(unknown)}")
    return cleaned, opt_outs
