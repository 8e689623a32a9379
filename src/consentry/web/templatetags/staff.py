"""Template filters of the staff app: words for the ledger's codes, lookups in a dict."""

from __future__ import annotations

from django import template

register = template.Library()

SOURCE_LABELS = {
    "sms_keyword": "texted a keyword",
    "carrier": "reported by the carrier",
    "sms_reply": "asked in a reply",
    "one_click_unsubscribe": "the unsubscribe link",
    "mailto_unsubscribe": "an unsubscribe email",
    "resubscribe_click": "the opt-in email's button",
    "esp_webhook": "reported by the email service",
    "portal": "the patient portal",
    "staff": "staff",
    "pms_sync": "practice-management sync",
    "import": "an import",
    "api": "the API",
}

MARK_ICONS = {
    "sms_opted_out": "⊘",
    "email_unsubscribed": "✉︎⊘",
    "email_bounced": "✉︎!",
    "blocked": "⛔︎",
    "invalid": "✗",
    "landline": "☎︎",
}


@register.filter
def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source.replace("_", " "))


@register.filter
def mark_icon(code: str) -> str:
    return MARK_ICONS.get(code, "!")


@register.filter
def get(mapping: dict, key):
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def words(code: str) -> str:
    """A code in words: ``sms_opted_out`` -> "sms opted out"."""
    return (code or "").replace("_", " ")
