"""Built-in message categories and the notification grid a new practice starts with.

Categories are data: each practice gets its own copy and may add more. Whether a
category is marketing decides whether PMS marketing consent applies to it.
"""

from .rules import Category, Channel

E, S, A = Channel.EMAIL, Channel.SMS, Channel.IN_APP

# key: (marketing, default notification channels, patients may turn it off)
BUILTIN_CATEGORIES: dict[str, tuple[bool, tuple[Channel, ...], bool]] = {
    "appointment_reminder": (False, (E, S), True),
    "appointment_confirmed": (False, (E,), True),
    "appointment_cancelled": (False, (E,), True),
    "recall": (False, (S,), True),
    "payment_due": (False, (E,), True),
    "payment_received": (False, (E,), True),
    "payment_failed": (False, (E, S), True),
    "message_received": (False, (A, E), True),
    "document_shared": (False, (E, S), True),
    "survey": (False, (S,), True),
    "announcement": (False, (E,), True),
    "system": (False, (A,), False),
    "marketing": (True, (E,), True),
}


def builtin_category(key: str) -> Category:
    """A built-in category as a new practice gets it, as the rules see it."""
    marketing, channels, can_disable = BUILTIN_CATEGORIES[key]
    return Category(
        key=key, marketing=marketing, notification_channels=frozenset(channels), patient_can_disable=can_disable
    )
