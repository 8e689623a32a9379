"""The rules' view of a built-in category, as a new practice gets it (the table is in the vocabulary)."""

from consentry.vocabulary import BUILTIN_CATEGORIES

from .rules import Category


def builtin_category(key: str) -> Category:
    """A built-in category as a new practice gets it, as the rules see it."""
    marketing, channels, can_disable = BUILTIN_CATEGORIES[key]
    return Category(
        key=key, marketing=marketing, notification_channels=frozenset(channels), patient_can_disable=can_disable
    )
