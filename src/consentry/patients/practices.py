"""Practices (the tenants): onboarding, settings, and the API keys that act for them."""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets

from django.db import transaction

from consentry.errors import InvalidInput
from consentry.vocabulary import BUILTIN_CATEGORIES, Scope

from .addresses import normalize_email, normalize_phone, validate_timezone
from .categories import CHANNELS
from .locations import check_number_free
from .models import (
    DEFAULT_OPT_OUT_HINT_TEXT,
    MAX_OPT_OUT_HINT_TEXT,
    ApiKey,
    Category,
    KeywordMode,
    OptOutHint,
    Practice,
    ReasonableMeans,
)


def hash_api_key(key: str) -> str:
    # API keys are 256-bit random strings, so a plain SHA-256 is enough: there
    # is nothing to brute-force that a slow hash would protect.
    return hashlib.sha256(key.encode()).hexdigest()


MAX_KEY_LABEL = 100


def clean_scopes(scopes) -> list[str]:
    if not isinstance(scopes, (list, tuple)) or not scopes or not all(isinstance(v, str) for v in scopes):
        raise InvalidInput("scopes", f"at least one of {', '.join(Scope)}")
    unknown = sorted(set(scopes) - set(Scope))
    if unknown:
        raise InvalidInput("scopes", f"unknown scope(s): {', '.join(unknown)}; the scopes are {', '.join(Scope)}")
    return [s.value for s in Scope if s.value in scopes]


def create_api_key(*, practice: Practice, label: str = "", scopes=tuple(Scope)) -> tuple[ApiKey, str]:
    """A new key with these scopes (every scope by default): its row, and the secret, shown only now
    (only its SHA-256 is stored)."""
    label = " ".join((label or "").split())
    if len(label) > MAX_KEY_LABEL:
        raise InvalidInput("label", f"is at most {MAX_KEY_LABEL} characters")
    cleaned = clean_scopes(list(scopes))
    secret = "csk_" + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(practice=practice, key_hash=hash_api_key(secret), label=label, scopes=cleaned)
    return key, secret


def describe_api_key(key: ApiKey) -> dict:
    """A key as the API and the CLI show it: never its secret."""
    return {
        "id": key.pk,
        "label": key.label,
        "scopes": key.scopes,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def issue_api_key(*, practice: Practice, label: str = "") -> str:
    """A new key with every scope; its secret."""
    return create_api_key(practice=practice, label=label)[1]


def api_key_for(key: str) -> ApiKey | None:
    """The live API key row (with its practice) for a presented key, or None."""
    return ApiKey.objects.select_related("practice").filter(key_hash=hash_api_key(key), revoked_at__isnull=True).first()


KEYWORD_LANGUAGES = ("es",)  # besides English, which is always on
DEFAULT_TIMEZONE = "America/New_York"  # a practice whose texting number does not say where it is
MAX_RATE_PER_SECOND = 10_000.0


def _rate(value, field: str) -> float | None:
    if value is None or value == "":
        return None  # the provider's default
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a number of messages per second")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, "must be a number of messages per second") from None
    if not 0 < rate <= MAX_RATE_PER_SECOND:
        raise InvalidInput(field, f"must be more than 0 and at most {MAX_RATE_PER_SECOND:g}")
    return rate


def _time(value, field: str):
    if isinstance(value, datetime.time):
        return value
    try:
        return datetime.time.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, f"expected HH:MM, got {value!r}") from None


_NAME_ADDR = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>\s*$")


def clean_email_from(value) -> str:
    """The From of the practice's email: an address, or a display name and an address
    (``Maple Pediatrics <noreply@maple.example>``), kept as ``Name <address>``."""
    if not isinstance(value, str):
        raise InvalidInput("email_from", "must be an email address, optionally with a name: Name <address>")
    match = _NAME_ADDR.match(value)
    if match is None:
        return normalize_email(value, field="email_from")
    name = " ".join(match["name"].strip().strip('"').split())
    address = normalize_email(match["addr"], field="email_from")
    if len(name) > 100:
        raise InvalidInput("email_from", "the name is at most 100 characters")
    if any(not ch.isprintable() for ch in name) or '"' in name:
        raise InvalidInput("email_from", "the name may not hold quotes or control characters")
    return f"{name} <{address}>" if name else address


_STOP = re.compile(r"\bSTOP\b", re.IGNORECASE)


def clean_opt_out_hint_text(value) -> str:
    """The practice's words for how to stop, at the end of automated texts: one short line naming STOP
    (the keyword every carrier honours, whatever the language)."""
    if not isinstance(value, str):
        raise InvalidInput("opt_out_hint_text", "must be text")
    if "\n" in value.strip() or "\r" in value.strip():
        raise InvalidInput("opt_out_hint_text", "must be one line")
    text = " ".join(value.split())
    if not text:
        raise InvalidInput("opt_out_hint_text", f"is required, e.g. {DEFAULT_OPT_OUT_HINT_TEXT!r}")
    if len(text) > MAX_OPT_OUT_HINT_TEXT:
        raise InvalidInput("opt_out_hint_text", f"is at most {MAX_OPT_OUT_HINT_TEXT} characters")
    if not _STOP.search(text):
        raise InvalidInput(
            "opt_out_hint_text", f"must tell how to stop with the word STOP, e.g. {DEFAULT_OPT_OUT_HINT_TEXT!r}"
        )
    if any(not ch.isprintable() for ch in text):
        raise InvalidInput("opt_out_hint_text", "may not hold control characters")
    return text


def clean_practice_settings(values: dict, *, region: str = "US") -> dict:  # noqa: C901 (one branch per setting)
    """Check the settings a practice admin may change; return them as model fields.

    Every value is checked before anything is written, whatever the interface
    (API, command line).
    """
    cleaned: dict = {}
    for field, value in values.items():
        if field == "name":
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput("name", "a practice name is required")
            if len(value.strip()) > 200:
                raise InvalidInput("name", "is at most 200 characters")
            cleaned["name"] = value.strip()
        elif field == "timezone":
            cleaned["timezone"] = validate_timezone(value)
        elif field == "contact_phone":
            cleaned["contact_phone"] = normalize_phone(value, region=region, field=field).number
        elif field == "email_from":
            cleaned["email_from"] = clean_email_from(value) if value else ""
        elif field == "send_window":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise InvalidInput("send_window", "expected [start, end] as HH:MM")
            cleaned["send_window_start"] = _time(value[0], "send_window")
            cleaned["send_window_end"] = _time(value[1], "send_window")
        elif field == "keyword_mode":
            if value not in KeywordMode.values:
                raise InvalidInput(field, f"must be one of {', '.join(KeywordMode.values)}")
            cleaned[field] = value
        elif field == "reasonable_means":
            if value not in ReasonableMeans.values:
                raise InvalidInput(field, f"must be one of {', '.join(ReasonableMeans.values)}")
            cleaned[field] = value
        elif field == "keyword_languages":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise InvalidInput(field, "must be a list of language codes")
            wanted = sorted({v.strip().lower() for v in value} - {"en"})
            unknown = set(wanted) - set(KEYWORD_LANGUAGES)
            if unknown:
                raise InvalidInput(
                    field,
                    f"unsupported: {', '.join(sorted(unknown))} "
                    f"(supported besides English: {', '.join(KEYWORD_LANGUAGES)})",
                )
            cleaned[field] = wanted
        elif field in ("sms_rate_per_second", "email_rate_per_second"):
            cleaned[field] = _rate(value, field)
        elif field == "contact_preferences_source":
            if value not in ("consentry", "ehr"):
                raise InvalidInput(field, "must be consentry or ehr")
            cleaned[field] = value
        elif field == "frequency_caps":
            if not isinstance(value, bool):
                raise InvalidInput(field, "must be true or false")
            cleaned[field] = value
        elif field == "opt_out_hint":
            if value not in OptOutHint.values:
                raise InvalidInput(field, f"must be one of {', '.join(OptOutHint.values)}")
            cleaned[field] = value
        elif field == "opt_out_hint_text":
            cleaned[field] = clean_opt_out_hint_text(value)
        elif field in ("frequency_cap_per_day", "frequency_cap_per_week"):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                raise InvalidInput(field, "must be a whole number from 1 to 100")
            cleaned[field] = value
        else:
            raise InvalidInput(field, "is not a practice setting")
    return cleaned


@transaction.atomic
def create_practice(
    *,
    name: str,
    texting_number: str,
    twilio_auth_token: str = "",
    twilio_account_sid: str = "",
    timezone: str = "",
    region: str = "US",
    contact_phone: str = "",
    email_from: str = "",
    send_window: tuple | None = None,
    **settings,
) -> tuple[Practice, str]:
    """Create a practice with the built-in categories and one API key (returned once).

    Without a ``timezone``, the practice takes that of its texting number's area code (America/New_York
    when the number does not tell). ``settings`` are any of ``clean_practice_settings``'s fields.
    """
    if not name or not name.strip():
        raise InvalidInput("name", "a practice name is required")
    phone = normalize_phone(texting_number, region=region, field="texting_number")
    number = phone.number
    values = {"name": name, "timezone": timezone or phone.timezone or DEFAULT_TIMEZONE, **settings}
    if contact_phone:
        values["contact_phone"] = contact_phone
    if email_from:
        values["email_from"] = email_from
    if send_window:
        values["send_window"] = send_window
    cleaned = clean_practice_settings(values, region=region)
    check_number_free(number)
    cleaned.setdefault("contact_phone", number)
    practice = Practice.objects.create(
        texting_number=number,
        region=region,
        twilio_account_sid=twilio_account_sid,
        # Every inbound webhook is signature-checked; a practice that has not
        # connected Twilio yet gets a random token that the sandbox signs with.
        twilio_auth_token=twilio_auth_token or secrets.token_hex(16),
        **cleaned,
    )
    Category.objects.bulk_create(
        Category(
            practice=practice,
            key=key,
            marketing=marketing,
            notification_channels=[c for c in CHANNELS if c in channels],
            patient_can_disable=can_disable,
        )
        for key, (marketing, channels, can_disable) in BUILTIN_CATEGORIES.items()
    )
    return practice, issue_api_key(practice=practice, label="initial")


@transaction.atomic
def update_practice(practice: Practice, values: dict) -> Practice:
    """Change a practice's settings; all are checked first, and nothing is written on an error."""
    cleaned = clean_practice_settings(values, region=practice.region)
    if cleaned:
        for field, value in cleaned.items():
            setattr(practice, field, value)
        practice.save(update_fields=list(cleaned))
    return practice


def revoke_api_key(*, practice: Practice, key_id: int) -> ApiKey:
    """Stop an API key from working (it stays listed, revoked). Another practice's key is not found."""
    key = ApiKey.objects.filter(practice=practice, pk=key_id).first()
    if key is None:
        raise InvalidInput("key", "no such API key")
    if key.revoked_at is None:
        key.revoked_at = datetime.datetime.now(datetime.UTC)
        key.save(update_fields=["revoked_at"])
    return key


@transaction.atomic
def update_connection(
    practice: Practice, *, texting_number: str | None = None, account_sid: str | None = None, auth_token: str = ""
) -> Practice:
    """Change the practice's texting number and Twilio credentials. The auth token is write-only:
    an empty one keeps the current token."""
    fields = []
    if texting_number is not None:
        number = normalize_phone(texting_number, region=practice.region, field="texting_number").number
        check_number_free(number, practice=practice)
        practice.texting_number = number
        fields.append("texting_number")
    if account_sid is not None:
        sid = account_sid.strip()
        if sid and not re.fullmatch(r"AC[0-9a-fA-F]{32}", sid):
            raise InvalidInput("twilio_account_sid", "a Twilio account SID is AC followed by 32 hexadecimal digits")
        practice.twilio_account_sid = sid
        fields.append("twilio_account_sid")
    if auth_token:
        token = auth_token.strip()
        if not re.fullmatch(r"[0-9A-Za-z]{16,64}", token):
            raise InvalidInput("twilio_auth_token", "a Twilio auth token is 16 to 64 letters and digits")
        practice.twilio_auth_token = token
        fields.append("twilio_auth_token")
    if fields:
        practice.save(update_fields=fields)
    return practice
