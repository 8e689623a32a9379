"""Settings, for a practice's admins: the practice, its texting connection, the notification grid,
staff users, API keys. Each section is its own form posting to its own address; every value is
checked by the same services as the API and the command line."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from consentry.accounts.models import ROLE_LABELS, Membership
from consentry.accounts.services import base_url, invite_staff, remove_staff, set_role
from consentry.errors import InvalidInput
from consentry.patients.categories import CHANNELS, set_notification_channels
from consentry.patients.models import (
    DEFAULT_OPT_OUT_HINT_TEXT,
    MAX_OPT_OUT_HINT_TEXT,
    ApiKey,
    Category,
    KeywordMode,
    OptOutHint,
    Practice,
    ReasonableMeans,
)
from consentry.patients.practices import create_api_key, revoke_api_key, update_connection, update_practice
from consentry.vocabulary import Scope

from .access import staff_page

CHANNEL_LABELS = {"in_app": "In-app and push", "sms": "Text", "voice": "Call", "email": "Email"}


class PracticeForm(forms.Form):
    name = forms.CharField(label="Practice name", max_length=200)
    timezone = forms.CharField(label="Time zone", max_length=64, help_text="e.g. America/Chicago")
    contact_phone = forms.CharField(label="Contact phone", max_length=40)
    email_from = forms.CharField(
        label="Email From", max_length=320, required=False, help_text="Maple Pediatrics <noreply@maple.example>"
    )
    window_start = forms.TimeField(label="Automated messages from", widget=forms.TimeInput(attrs={"type": "time"}))
    window_end = forms.TimeField(label="until", widget=forms.TimeInput(attrs={"type": "time"}))
    keyword_mode = forms.ChoiceField(label="Keyword confirmations", choices=KeywordMode.choices)
    spanish_keywords = forms.BooleanField(label="Understand Spanish keywords (ALTO, COMENZAR...)", required=False)
    reasonable_means = forms.ChoiceField(
        label="Replies that ask to stop in other words", choices=ReasonableMeans.choices
    )
    contact_preferences_source = forms.ChoiceField(
        label="Preferred phone, do-not-contact and marketing consent are kept by",
        choices=[("consentry", "Consentry: staff change them here"), ("ehr", "The EHR/PMS: read-only here, synced")],
    )
    frequency_caps = forms.BooleanField(label="Cap automated calls and texts per number", required=False)
    frequency_cap_per_day = forms.IntegerField(label="At most a day", min_value=1, max_value=100)
    frequency_cap_per_week = forms.IntegerField(label="At most a week", min_value=1, max_value=100)
    sms_rate_per_second = forms.FloatField(label="Texts per second (blank: the provider's default)", required=False)
    email_rate_per_second = forms.FloatField(label="Emails per second (blank: the provider's default)", required=False)
    # Not required: a form without them leaves them as they are; a blank wording is the default one.
    opt_out_hint = forms.ChoiceField(
        label="End automated and broadcast texts with the opt-out instruction on",
        choices=OptOutHint.choices,
        required=False,
    )
    opt_out_hint_text = forms.CharField(
        label="Opt-out instruction",
        max_length=MAX_OPT_OUT_HINT_TEXT + 40,  # the service says why a longer one is refused
        required=False,
        help_text=f"One line naming STOP, at most {MAX_OPT_OUT_HINT_TEXT} characters "
        f"(blank: {DEFAULT_OPT_OUT_HINT_TEXT}). It counts towards a text's length.",
    )

    @classmethod
    def of(cls, practice: Practice) -> PracticeForm:
        return cls(
            initial={
                "name": practice.name,
                "timezone": practice.timezone,
                "contact_phone": practice.contact_phone,
                "email_from": practice.email_from,
                "window_start": practice.send_window_start,
                "window_end": practice.send_window_end,
                "keyword_mode": practice.keyword_mode,
                "spanish_keywords": "es" in (practice.keyword_languages or []),
                "reasonable_means": practice.reasonable_means,
                "contact_preferences_source": practice.contact_preferences_source,
                "frequency_caps": practice.frequency_caps,
                "frequency_cap_per_day": practice.frequency_cap_per_day,
                "frequency_cap_per_week": practice.frequency_cap_per_week,
                "sms_rate_per_second": practice.sms_rate_per_second,
                "email_rate_per_second": practice.email_rate_per_second,
                "opt_out_hint": practice.opt_out_hint,
                "opt_out_hint_text": practice.opt_out_hint_text,
            }
        )

    def values(self) -> dict:
        data = self.cleaned_data
        values = {key: data[key] for key in ("name", "timezone", "contact_phone", "email_from", "keyword_mode")}
        values.update(
            send_window=(data["window_start"], data["window_end"]),
            keyword_languages=["es"] if data["spanish_keywords"] else [],
            reasonable_means=data["reasonable_means"],
            contact_preferences_source=data["contact_preferences_source"],
            frequency_caps=data["frequency_caps"],
            frequency_cap_per_day=data["frequency_cap_per_day"],
            frequency_cap_per_week=data["frequency_cap_per_week"],
            sms_rate_per_second=data["sms_rate_per_second"],
            email_rate_per_second=data["email_rate_per_second"],
        )
        if data["opt_out_hint"]:
            values["opt_out_hint"] = data["opt_out_hint"]
        if "opt_out_hint_text" in self.data:
            values["opt_out_hint_text"] = data["opt_out_hint_text"] or DEFAULT_OPT_OUT_HINT_TEXT
        return values


class ConnectionForm(forms.Form):
    texting_number = forms.CharField(label="Texting number", max_length=40)
    twilio_account_sid = forms.CharField(label="Twilio account SID", max_length=64, required=False)
    twilio_auth_token = forms.CharField(
        label="Twilio auth token",
        max_length=64,
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Write-only: it is never shown again. Leave blank to keep the current one.",
    )


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    name = forms.CharField(label="Name", max_length=150, required=False)
    role = forms.ChoiceField(label="Role", choices=[(r.value, label) for r, label in ROLE_LABELS.items()])


class KeyForm(forms.Form):
    label = forms.CharField(label="Label", max_length=100, help_text="Which system uses it, e.g. EHR sync")
    scopes = forms.MultipleChoiceField(
        label="It may",
        choices=[
            (Scope.READ.value, "read (every GET)"),
            (Scope.SEND.value, "send messages"),
            (Scope.MANAGE.value, "manage patients, consent and settings"),
        ],
        widget=forms.CheckboxSelectMultiple,
        initial=[s.value for s in Scope],
    )


def _page(request: HttpRequest, status: int = 200, **forms_given) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    categories = list(Category.objects.filter(practice=practice).order_by("marketing", "key"))
    context = {
        "nav": "settings",
        "practice_form": forms_given.get("practice_form") or PracticeForm.of(practice),
        "connection_form": forms_given.get("connection_form")
        or ConnectionForm(
            initial={"texting_number": practice.texting_number, "twilio_account_sid": practice.twilio_account_sid}
        ),
        "token_set": bool(practice.twilio_auth_token),
        "channels": [(key, CHANNEL_LABELS[key]) for key in CHANNELS],
        "grid": [(c, [(key, key in c.notification_channels) for key in CHANNELS]) for c in categories],
        "members": Membership.objects.filter(practice=practice).select_related("user").order_by("user__username"),
        "roles": [(r.value, label) for r, label in ROLE_LABELS.items()],
        "invite_form": forms_given.get("invite_form") or InviteForm(),
        "keys": ApiKey.objects.filter(practice=practice).order_by("-created_at"),
        "key_form": forms_given.get("key_form") or KeyForm(),
        "new_key": forms_given.get("new_key", ""),
    }
    return render(request, "staff/settings.html", context, status=status)


# A setting's name in the services, where the form shows it otherwise.
FORM_FIELD = {"send_window": "window_start"}


def _refuse(form: forms.Form, exc: InvalidInput) -> None:
    named = FORM_FIELD.get(exc.field, exc.field)
    field = named if named in form.fields else None
    form.add_error(field, exc.message if field else str(exc))


@staff_page(admin=True)
def settings_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _save(request: HttpRequest, form: forms.Form, name: str, apply, done) -> HttpResponse:
    """A section's form: checked, then ``apply(cleaned_data)``; a refusal comes back on the form (400)
    with the field at fault, a success goes back to the page with ``done(result)`` said."""
    if form.is_valid():
        try:
            result = apply(form.cleaned_data)
        except InvalidInput as exc:
            _refuse(form, exc)
        else:
            messages.success(request, done(result))
            return redirect("staff-settings")
    return _page(request, status=400, **{name: form})


@require_POST
@staff_page(admin=True)
def save_practice(request: HttpRequest) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    form = PracticeForm(request.POST)
    return _save(
        request,
        form,
        "practice_form",
        lambda data: update_practice(practice, form.values()),
        lambda _: "Practice settings saved.",
    )


@require_POST
@staff_page(admin=True)
def save_connection(request: HttpRequest) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    return _save(
        request,
        ConnectionForm(request.POST),
        "connection_form",
        lambda data: update_connection(
            practice,
            texting_number=data["texting_number"],
            account_sid=data["twilio_account_sid"],
            auth_token=data["twilio_auth_token"],
        ),
        lambda _: "Texting connection saved.",
    )


@require_POST
@staff_page(admin=True)
def save_notifications(request: HttpRequest) -> HttpResponse:
    """The notification grid: for each type, the channels it goes on by default (all in one change)."""
    practice = request.staff.practice  # type: ignore[attr-defined]
    for category in Category.objects.filter(practice=practice):
        chosen = [key for key in CHANNELS if request.POST.get(f"{category.key}:{key}") == "on"]
        if chosen != list(category.notification_channels):
            set_notification_channels(category=category, notification_channels=chosen)
    messages.success(request, "Notification defaults saved.")
    return redirect("staff-settings")


@require_POST
@staff_page(admin=True)
def invite(request: HttpRequest) -> HttpResponse:
    staff = request.staff  # type: ignore[attr-defined]
    return _save(
        request,
        InviteForm(request.POST),
        "invite_form",
        lambda data: invite_staff(
            practice=staff.practice,
            email=data["email"],
            role=data["role"],
            invited_by=staff.user,
            base=base_url(request),
        ),
        lambda account: f"Invitation sent to {account.user.email}.",
    )


@require_POST
@staff_page(admin=True)
def change_role(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        set_role(practice=request.staff.practice, user_id=user_id, role=request.POST.get("role", ""))  # type: ignore[attr-defined]
    except InvalidInput as exc:
        messages.error(request, f"Not changed: {exc.message}.")
    else:
        messages.success(request, "Role changed.")
    return redirect("staff-settings")


@require_POST
@staff_page(admin=True)
def remove(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        remove_staff(practice=request.staff.practice, user_id=user_id)  # type: ignore[attr-defined]
    except InvalidInput as exc:
        messages.error(request, f"Not removed: {exc.message}.")
    else:
        messages.success(request, "Staff user removed from the practice.")
    return redirect("staff-settings")


@require_POST
@staff_page(admin=True)
def create_key(request: HttpRequest) -> HttpResponse:
    form = KeyForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, key_form=form)
    _, key = create_api_key(
        practice=request.staff.practice,  # type: ignore[attr-defined]
        label=form.cleaned_data["label"],
        scopes=form.cleaned_data["scopes"],
    )
    # Shown on this answer only: it is stored hashed.
    return _page(request, new_key=key)


@require_POST
@staff_page(admin=True)
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        revoke_api_key(practice=request.staff.practice, key_id=key_id)  # type: ignore[attr-defined]
    except InvalidInput:
        raise Http404("no such API key") from None
    messages.success(request, "API key revoked: it no longer works.")
    return redirect("staff-settings")
