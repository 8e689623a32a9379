"""Reads of consent for people to look at, one module per concern; every name is here too.

The API, the patient portal and the staff app show the same facts from here;
``ledger.consent_state()`` remains the read that ``decide()`` takes.
"""

from ..ledger import AddressStatus, address_status
from .addresses import (
    EmailView,
    History,
    PhoneView,
    address_history,
    consent_timeline,
    next_opt_in_email_at,
    opt_outs_since,
    patient_addresses,
)
from .audit import EXPORT_FIELDS, export_rows, ledger_events
from .blocks import BlockedNumber, blocked_numbers
from .marks import AddressCard, Mark, MarkCode, address_cards
from .notifications import (
    NotificationCell,
    NotificationRow,
    NotificationSettings,
    notification_settings,
    patient_phone_numbers,
)

__all__ = [
    "BlockedNumber",
    "blocked_numbers",
    "AddressStatus",
    "address_status",
    "History",
    "address_history",
    "PhoneView",
    "EmailView",
    "patient_addresses",
    "opt_outs_since",
    "MarkCode",
    "Mark",
    "AddressCard",
    "address_cards",
    "consent_timeline",
    "next_opt_in_email_at",
    "EXPORT_FIELDS",
    "ledger_events",
    "export_rows",
    "NotificationCell",
    "NotificationRow",
    "NotificationSettings",
    "notification_settings",
    "patient_phone_numbers",
]
