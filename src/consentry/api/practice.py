"""Practice settings API: read the API key's practice and change its settings.

Every setting is checked by ``clean_practice_settings`` (the same check as
``consentry practice update``) before anything is written; one bad field
answers 422 naming it and changes nothing. The texting number, the region and
the providers are set when the practice is onboarded and are read-only here.
"""

from __future__ import annotations

from typing import Any, Literal

from ninja import Field, Router, Schema

from consentry.api.auth import practice_of
from consentry.api.schemas import In
from consentry.patients.models import Practice
from consentry.patients.practices import update_practice
from consentry.providers.base import provider_name

router = Router(tags=["practice"])

# NUL cannot be stored in a text column on every database.
PRINTABLE = r"^[^\x00]*$"


class PracticeOut(Schema):
    id: str
    name: str
    texting_number: str
    timezone: str
    contact_phone: str
    email_from: str
    send_window: list[str]  # ["HH:MM", "HH:MM"] local time; equal times mean no quiet hours
    keyword_mode: Literal["self", "provider"]
    keyword_languages: list[str]  # besides English, which is always understood
    reasonable_means: Literal["flag", "auto"]
    contact_preferences_source: Literal["consentry", "ehr"]
    sms_rate_per_second: float | None  # null: the provider's default
    email_rate_per_second: float | None
    frequency_caps: bool
    frequency_cap_per_day: int
    frequency_cap_per_week: int
    opt_out_hint: Literal["first", "always", "never"]
    opt_out_hint_text: str
    sms_provider: str
    email_provider: str


# The default of a field that was not sent: model_dump(exclude_unset=True) leaves it out, so it is
# never read, and the field's type (what a client may send) stays non-null.
UNSET: Any = None


class PracticePatch(In):
    """Only the fields sent change. Values are taken as sent (no "true" for true, no "5" for 5);
    only the rates take null (the provider's default)."""

    model_config = {"extra": "forbid", "strict": True}
    name: str = Field(UNSET, max_length=200, pattern=PRINTABLE)
    timezone: str = Field(UNSET, max_length=64)
    contact_phone: str = Field(UNSET, max_length=40)
    email_from: str = Field(UNSET, max_length=320)  # "" removes it
    send_window: list[str] = Field(UNSET, description='["HH:MM", "HH:MM"] local time; equal times: no quiet hours')
    keyword_mode: Literal["self", "provider"] = UNSET
    keyword_languages: list[str] = Field(UNSET, max_length=10)
    reasonable_means: Literal["flag", "auto"] = Field(
        UNSET, description="Replies that ask to stop without the keyword: flag them for staff, or opt out at once."
    )
    contact_preferences_source: Literal["consentry", "ehr"] = Field(
        UNSET,
        description="Who owns patients' preferred phone, do-not-contact and marketing consent: Consentry's "
        "staff, or the EHR/PMS (the staff app then shows them read-only).",
    )
    sms_rate_per_second: float | None = None
    email_rate_per_second: float | None = None
    frequency_caps: bool = UNSET
    frequency_cap_per_day: int = UNSET
    frequency_cap_per_week: int = UNSET
    opt_out_hint: Literal["first", "always", "never"] = Field(
        UNSET,
        description="The opt-out instruction at the end of automated and broadcast texts: on a number's first "
        "in 30 days and on every marketing text (first), on every one (always), or on none (never).",
    )
    opt_out_hint_text: str = Field(
        UNSET, max_length=200, pattern=PRINTABLE, description="Its words: one line naming STOP, at most 60 characters."
    )


def _practice_out(practice: Practice) -> dict:
    return {
        "id": str(practice.pk),
        "name": practice.name,
        "texting_number": practice.texting_number,
        "timezone": practice.timezone,
        "contact_phone": practice.contact_phone,
        "email_from": practice.email_from,
        "send_window": [practice.send_window_start.strftime("%H:%M"), practice.send_window_end.strftime("%H:%M")],
        "keyword_mode": practice.keyword_mode,
        "keyword_languages": practice.keyword_languages,
        "reasonable_means": practice.reasonable_means,
        "contact_preferences_source": practice.contact_preferences_source,
        "sms_rate_per_second": practice.sms_rate_per_second,
        "email_rate_per_second": practice.email_rate_per_second,
        "frequency_caps": practice.frequency_caps,
        "frequency_cap_per_day": practice.frequency_cap_per_day,
        "frequency_cap_per_week": practice.frequency_cap_per_week,
        "opt_out_hint": practice.opt_out_hint,
        "opt_out_hint_text": practice.opt_out_hint_text,
        "sms_provider": provider_name(practice, "sms"),
        "email_provider": provider_name(practice, "email"),
    }


@router.get("", response=PracticeOut)
def practice_get(request):
    """The API key's practice and its settings."""
    return _practice_out(practice_of(request))


@router.patch("", response=PracticeOut)
def practice_update(request, payload: PracticePatch):
    """Change any of the settings sent; all are checked first and nothing changes on an error."""
    practice = update_practice(practice_of(request), payload.model_dump(exclude_unset=True))
    return _practice_out(practice)
