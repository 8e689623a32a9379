"""Settings in the staff app: admins only; practice settings, the write-only Twilio token, the
notification grid, staff invitations and roles, API keys shown once."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from consentry.accounts.models import Membership
from consentry.patients.models import ApiKey, Category, Practice
from consentry.providers.models import SandboxMessage
from tests.conftest import TWILIO_TOKEN, make_practice, make_staff, signed_in

pytestmark = pytest.mark.django_db

POSTS = [
    "/settings/practice",
    "/settings/connection",
    "/settings/notifications",
    "/settings/staff/invite",
    "/settings/keys",
]


@pytest.fixture
def admin(practice):
    return make_staff(practice, email="ann@oak.example", role="admin", name="Ann Admin")


@pytest.fixture
def client(admin):
    return signed_in(admin)


def practice_form(practice, **changes):
    form = {
        "name": practice.name,
        "timezone": practice.timezone,
        "contact_phone": practice.contact_phone,
        "email_from": practice.email_from,
        "window_start": "08:00",
        "window_end": "21:00",
        "keyword_mode": "self",
        "reasonable_means": "flag",
        "contact_preferences_source": practice.contact_preferences_source,
        "frequency_cap_per_day": "1",
        "frequency_cap_per_week": "3",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def test_front_desk_cannot_open_settings_or_post_to_them(practice):
    desk = signed_in(make_staff(practice))
    page = desk.get("/settings/")
    assert page.status_code == 403 and b"Admins only" in page.content
    assert b'href="/settings/"' not in desk.get("/").content
    for url in POSTS:
        assert desk.post(url, {"name": "Taken over"}).status_code == 403, url
    assert Practice.objects.get().name == "Oak Clinic"


def test_an_admin_changes_the_practice_settings_and_the_email_from_takes_a_display_name(practice, client):
    answer = client.post(
        "/settings/practice",
        practice_form(
            practice,
            name="Maple Pediatrics",
            timezone="America/Chicago",
            email_from="Maple Pediatrics <NoReply@Maple.example>",
            window_start="09:00",
            spanish_keywords="on",
            frequency_caps="on",
        ),
    )
    assert answer.status_code == 302
    stored = Practice.objects.get()
    assert (stored.name, stored.timezone, stored.email_from) == (
        "Maple Pediatrics",
        "America/Chicago",
        "Maple Pediatrics <noreply@maple.example>",
    )
    assert stored.keyword_languages == ["es"] and stored.frequency_caps is True
    assert stored.send_window_start.hour == 9
    assert stored.email_sender == "Maple Pediatrics <noreply@maple.example>"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"contact_phone": "not a phone"}, "not a phone number"),
        ({"email_from": "Front desk"}, "not an email address"),
        ({"email_from": 'Bad "Name" <a@b.example>'}, "quotes"),
        ({"name": ""}, "required"),
        ({"frequency_cap_per_day": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_practice_settings_are_refused_with_the_reason_and_nothing_changes(practice, client, change, message):
    answer = client.post("/settings/practice", practice_form(practice, **{"timezone": "America/Chicago", **change}))
    assert answer.status_code == 400
    assert message in answer.content.decode().lower()
    assert Practice.objects.get().timezone == "America/New_York"


def test_the_twilio_token_is_write_only(practice, client):
    page = client.get("/settings/").content.decode()
    assert TWILIO_TOKEN not in page and "The auth token is set" in page
    sid = "AC" + "a" * 32
    form = {"texting_number": "(415) 555-0109", "twilio_account_sid": sid, "twilio_auth_token": ""}
    assert client.post("/settings/connection", form).status_code == 302
    stored = Practice.objects.get()
    assert (stored.texting_number, stored.twilio_account_sid, stored.twilio_auth_token) == (
        "+14155550109",
        sid,
        TWILIO_TOKEN,  # blank kept it
    )
    new_token = "f" * 32
    client.post("/settings/connection", {**form, "twilio_auth_token": new_token})
    assert Practice.objects.get().twilio_auth_token == new_token
    assert new_token not in client.get("/settings/").content.decode()
    bad = client.post("/settings/connection", {**form, "twilio_account_sid": "nope"})
    assert bad.status_code == 400 and "AC followed by 32" in bad.content.decode()


def test_a_texting_number_of_another_practice_is_refused(practice, client):
    make_practice(name="Elm Clinic", number="+14155550101")
    answer = client.post("/settings/connection", {"texting_number": "+14155550101", "twilio_account_sid": ""})
    assert answer.status_code == 400 and "already belongs to a practice" in answer.content.decode()
    assert Practice.objects.get(name="Oak Clinic").texting_number == "+14155550100"


def test_the_notification_grid_sets_each_types_default_channels(practice, client):
    page = client.get("/settings/").content.decode()
    assert 'name="appointment_reminder:email" id="g-appointment_reminder-email" checked' in page
    form = {f"{c.key}:{ch}": "on" for c in Category.objects.all() for ch in c.notification_channels}
    del form["appointment_reminder:email"]
    form["recall:email"] = "on"
    assert client.post("/settings/notifications", form).status_code == 302
    assert Category.objects.get(key="appointment_reminder").notification_channels == ["sms"]
    assert Category.objects.get(key="recall").notification_channels == ["sms", "email"]


def test_an_invitation_emails_a_set_password_link_through_the_practice_provider(practice, client):
    answer = client.post(
        "/settings/staff/invite", {"email": "Lee@Oak.example", "name": "Lee Front", "role": "front_desk"}
    )
    assert answer.status_code == 302
    [mail] = SandboxMessage.objects.filter(to="lee@oak.example")
    assert "Ann Admin invited you to Oak Clinic" in mail.body
    link = re.search(r"http\S+/account/set-password/\S+", mail.body).group(0)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    form_page = Client().get(path, follow=True)
    url = form_page.redirect_chain[-1][0]
    assert form_page.client.post(url, {"new_password1": "lees-passphrase-1", "new_password2": "lees-passphrase-1"})
    membership = Membership.objects.get(user__username="lee@oak.example")
    assert membership.role == "front_desk" and membership.practice == practice
    assert (
        Client().post("/account/sign-in", {"username": "lee@oak.example", "password": "lees-passphrase-1"})["Location"]
        == "/"
    )
    bad = client.post("/settings/staff/invite", {"email": "not an email", "role": "admin"})
    assert bad.status_code == 400 and "valid email" in bad.content.decode()


def test_roles_change_and_the_practice_always_keeps_an_admin(practice, client, admin):
    desk = make_staff(practice, email="lee@oak.example")
    assert client.post(f"/settings/staff/{desk.pk}/role", {"role": "admin"}).status_code == 302
    assert Membership.objects.get(user=desk).role == "admin"
    client.post(f"/settings/staff/{desk.pk}/remove")
    assert not Membership.objects.filter(user=desk).exists()
    refused = client.post(f"/settings/staff/{admin.pk}/role", {"role": "front_desk"}, follow=True)
    assert "the practice needs at least one admin" in refused.content.decode()
    refused = client.post(f"/settings/staff/{admin.pk}/remove", follow=True)
    assert "the practice needs at least one admin" in refused.content.decode()
    assert Membership.objects.get(user=admin).role == "admin"


def test_another_practices_staff_cannot_be_changed(practice, client):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = make_staff(elm, email="zed@elm.example", role="admin")
    answer = client.post(f"/settings/staff/{theirs.pk}/remove", follow=True)
    assert "no such staff user" in answer.content.decode()
    assert Membership.objects.filter(user=theirs).exists()


def test_an_api_key_is_shown_once_works_and_stops_working_when_revoked(practice, client):
    page = client.post("/settings/keys", {"label": "EHR sync", "scopes": ["read", "send", "manage"]}).content.decode()
    key = re.search(r'<code class="key">(csk_[^<]+)</code>', page).group(1)
    assert key not in client.get("/settings/").content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/practice").status_code == 200
    row = ApiKey.objects.get(label="EHR sync")
    assert key not in row.key_hash
    client.post(f"/settings/keys/{row.pk}/revoke")
    assert api.get("/api/v1/practice").status_code == 401
    elm_key = ApiKey.objects.create(practice=make_practice(name="Elm", number="+14155550101")[0], key_hash="x" * 64)
    assert client.post(f"/settings/keys/{elm_key.pk}/revoke").status_code == 404
    assert ApiKey.objects.get(pk=elm_key.pk).revoked_at is None


def test_a_key_has_the_scopes_ticked_and_no_more(practice, client):
    assert client.post("/settings/keys", {"label": "nothing"}).status_code == 400  # at least one scope
    page = client.post("/settings/keys", {"label": "Reports", "scopes": ["read"]}).content.decode()
    key = re.search(r'<code class="key">(csk_[^<]+)</code>', page).group(1)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/practice").status_code == 200
    refused = api.patch("/api/v1/practice", '{"name": "Taken over"}', content_type="application/json")
    assert refused.status_code == 403 and "manage" in refused.content.decode()
    assert Practice.objects.get().name == "Oak Clinic"
    assert "read</td>" in client.get("/settings/").content.decode()
