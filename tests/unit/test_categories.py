"""The built-in categories match the README's categories (and seed 004's default channels)."""

import pytest

from consentry.vocabulary import BUILTIN_CATEGORIES, Channel
from tests.unit.factories import category

E, S, A = Channel.EMAIL, Channel.SMS, Channel.IN_APP

# id: (marketing, default notification channels, patients may turn it off)
README_TABLE = {
    "appointment_reminder": (False, {E, S}, True),
    "appointment_confirmed": (False, {E}, True),
    "appointment_cancelled": (False, {E}, True),
    "recall": (False, {S}, True),
    "payment_due": (False, {E}, True),
    "payment_received": (False, {E}, True),
    "payment_failed": (False, {E, S}, True),
    "message_received": (False, {A, E}, True),
    "document_shared": (False, {E, S}, True),
    "survey": (False, {S}, True),
    "announcement": (False, {E}, True),
    "system": (False, {A}, False),
    "marketing": (True, {E}, True),
}


def test_builtin_category_ids_are_the_designed_ones():
    assert set(BUILTIN_CATEGORIES) == set(README_TABLE)


@pytest.mark.parametrize("key", sorted(README_TABLE))
def test_builtin_category_matches_design(key):
    marketing, channels, can_disable = README_TABLE[key]
    built = category(key)

    assert built.key == key
    assert built.marketing is marketing
    assert built.notification_channels == frozenset(channels)
    assert built.patient_can_disable is can_disable
