"""A practice's message types as the rules see them, and the quiet hours each one keeps."""

from __future__ import annotations

from consentry.consent.categories import category_from_row
from consentry.consent.rules import QUIET_HOURS_KINDS, Category, SendWindow
from consentry.errors import InvalidInput
from consentry.patients.models import Category as CategoryRow
from consentry.patients.models import Practice
from consentry.vocabulary import Kind


def category_row(practice: Practice, key: str) -> CategoryRow:
    row = CategoryRow.objects.filter(practice=practice, key=key).first()
    if row is None:
        raise InvalidInput("category", f"unknown category {key!r}")
    return row


def category_for(practice: Practice, key: str) -> Category:
    return category_from_row(category_row(practice, key))


def send_window(practice: Practice, kind: Kind, category: CategoryRow) -> SendWindow | None:
    """The quiet-hours window that applies, or None (staff messages, exempt types)."""
    if kind not in QUIET_HOURS_KINDS or category.quiet_hours_exempt:
        return None
    return SendWindow(practice.send_window_start, practice.send_window_end)
