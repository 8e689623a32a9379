"""The rules' view of a practice's stored category (``rules.builtin_category`` gives a built-in one)."""

from consentry.patients.models import Category as CategoryRow
from consentry.vocabulary import Channel

from .rules import Category


def category_from_row(row: CategoryRow) -> Category:
    """A practice's stored category, as the rules see it."""
    return Category(
        key=row.key,
        marketing=row.marketing,
        notification_channels=frozenset(Channel(c) for c in row.notification_channels),
        patient_can_disable=row.patient_can_disable,
    )
