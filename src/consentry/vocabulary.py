"""The product's vocabularies: one enum each, used by the rules, as model choices and in the API.

Pure values, standard library only, so every layer (patients, consent, messaging, the API) can
share them without importing one another.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    AUTOMATION = "automation"
    BROADCAST = "broadcast"
    MANUAL = "manual"
    NOTIFICATION = "notification"
    # Replies to STOP/START/HELP: the one message the law lets us send to a
    # number that just opted out, so the opt-out it confirms never blocks it.
    KEYWORD_REPLY = "keyword_reply"
    # The resubscribe email the person asked for (double opt-in): it goes to
    # an unsubscribed address by design; only a bounce stops it.
    CONSENT_REQUEST = "consent_request"


class Channel(StrEnum):
    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    IN_APP = "in_app"


class Reason(StrEnum):
    SMS_OPTED_OUT = "sms_opted_out"
    EMAIL_UNSUBSCRIBED = "email_unsubscribed"
    EMAIL_BOUNCED = "email_bounced"
    BLOCKED_FOR_CATEGORY = "blocked_for_category"
    DO_NOT_CONTACT = "do_not_contact"
    NO_MARKETING_CONSENT = "no_marketing_consent"
    PHONE_INVALID = "phone_invalid"
    NO_TEXT_CAPABLE_PHONE = "no_text_capable_phone"
    NO_REACHABLE_CHANNEL = "no_reachable_channel"
    CHANNEL_OFF_FOR_TYPE = "channel_off_for_type"
    CHANNEL_OPTED_OUT_BY_PATIENT = "channel_opted_out_by_patient"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    # Found by the worker after the decision, never by decide():
    OUTCOME_UNKNOWN = "outcome_unknown"  # handed to a provider that never answered: never resent
    NOT_DISPATCHED = "not_dispatched"  # its dispatch task stopped before handing it over, at every attempt


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"  # the carrier or mailbox refused it after we sent it
    FAILED = "failed"
    SKIPPED = "skipped"
    DEFERRED = "deferred"


class LineType(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    VOIP = "voip"
    UNKNOWN = "unknown"


class MarketingConsent(StrEnum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


def choices(vocabulary: type[StrEnum], *, blank: bool = False) -> list[tuple[str, str]]:
    """A vocabulary as a model field's ``choices`` (with "" first when a blank value is allowed)."""
    return [("", "")] * blank + [(member.value, member.value) for member in vocabulary]


# The categories every practice starts with: data, copied to each practice, which may add more.
# Whether a category is marketing decides whether PMS marketing consent applies to it.
_E, _S, _A = Channel.EMAIL, Channel.SMS, Channel.IN_APP

# key: (marketing, default notification channels, patients may turn it off)
BUILTIN_CATEGORIES: dict[str, tuple[bool, tuple[Channel, ...], bool]] = {
    "appointment_reminder": (False, (_E, _S), True),
    "appointment_confirmed": (False, (_E,), True),
    "appointment_cancelled": (False, (_E,), True),
    "recall": (False, (_S,), True),
    "payment_due": (False, (_E,), True),
    "payment_received": (False, (_E,), True),
    "payment_failed": (False, (_E, _S), True),
    "message_received": (False, (_A, _E), True),
    "document_shared": (False, (_E, _S), True),
    "survey": (False, (_S,), True),
    "announcement": (False, (_E,), True),
    "system": (False, (_A,), False),
    "marketing": (True, (_E,), True),
}


class Role(StrEnum):
    """What a staff user may do at one practice."""

    FRONT_DESK = "front_desk"  # patients, messages, the inbox, blocks
    ADMIN = "admin"  # and the practice's settings, staff and API keys


class Scope(StrEnum):
    """What an API key may do."""

    READ = "read"  # every GET
    SEND = "send"  # send messages, replies and opt-in emails
    MANAGE = "manage"  # every other change: patients, consent, blocks, categories, settings, keys
