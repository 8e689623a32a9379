"""Message content: personalization tokens, the practice name on texts, the email layout and unsubscribe headers."""

import re
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from consentry.consent.tokens import read_unsubscribe_token, token_from_mail_subject
from consentry.messaging.models import Delivery, Message
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, make_patient

pytestmark = pytest.mark.django_db

AVA, BEN = "ava@example.com", "ben@example.com"
PERSONAL = {
    "subject": "News from {{practice_name}}",
    "text": "Hi {{first_name}}, call us at {{practice_phone}}.",
    "html": "<p>Hi <b>{{first_name}}</b>, call us at {{practice_phone}}.</p>",
}


def _post(api, patients, content, kind="broadcast", category="announcement"):
    return api.post(
        "/messages",
        {"kind": kind, "category": category, "patient_ids": [str(p.pk) for p in patients], "content": content},
    )


def _sent_mail(smtp):
    return {m["To"]: m for m in smtp.messages()}


def test_tokens_are_filled_in_per_recipient(api, practice, smtp):
    ava = make_patient(practice, "Ava", emails=[AVA])
    ben = make_patient(practice, "Ben", emails=[BEN])
    assert _post(api, [ava, ben], {"email": PERSONAL}).status_code == 202
    drain_worker()
    mail = _sent_mail(smtp)
    assert mail[AVA]["Subject"] == "News from Oak Clinic"
    assert mail[AVA].get_body(("plain",)).get_content().startswith("Hi Ava, call us at +14155550100.")
    assert "<p>Hi <b>Ava</b>, call us at +14155550100.</p>" in mail[AVA].get_body(("html",)).get_content()
    assert mail[BEN].get_body(("plain",)).get_content().startswith("Hi Ben, call us at +14155550100.")
    # The content is stored once, with its tokens.
    assert "{{first_name}}" in Message.objects.get().content


def test_a_name_is_escaped_in_html_and_left_as_is_in_text(api, practice, smtp):
    odd = make_patient(practice, "<i>Al</i> & Co", emails=[AVA])
    assert _post(api, [odd], {"email": PERSONAL}).status_code == 202
    drain_worker()
    [message] = smtp.messages()
    assert "Hi <b>&lt;i&gt;Al&lt;/i&gt; &amp; Co</b>" in message.get_body(("html",)).get_content()
    assert message.get_body(("plain",)).get_content().startswith("Hi <i>Al</i> & Co,")


def test_texts_start_with_the_practice_name_once(api, practice):
    ava = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    ben = make_patient(practice, "Ben", phones=[("+14155550112", "mobile")])
    assert _post(api, [ava], {"sms": "Hi {{first_name}}, flu shots are in."}).status_code == 202
    assert _post(api, [ben], {"sms": "Oak Clinic: closed Monday."}).status_code == 202
    drain_worker()
    bodies = dict(SandboxMessage.objects.values_list("to", "body"))
    # Each number's first automated text ends with how to opt out (the practice's default policy).
    assert bodies == {
        "+14155550111": "Oak Clinic: Hi Ava, flu shots are in. Reply STOP to opt out.",
        "+14155550112": "Oak Clinic: closed Monday. Reply STOP to opt out.",
    }


@pytest.mark.parametrize(
    "content, field, words",
    [
        ({"sms": "Hi {{firstname}}"}, "content.sms", "unknown token {{firstname}}"),
        ({"sms": "Hi {{patient.ssn}}"}, "content.sms", "unknown token {{patient.ssn}}"),
        ({"sms": "{% include 'x.html' %}"}, "content.sms", "template tags"),
        ({"sms": "{% load static %}"}, "content.sms", "cannot read the template"),
        ({"sms": "{% if 1 %}x{% endif %}"}, "content.sms", "template tags"),
        ({"sms": "Hi {{first_name|safe}}"}, "content.sms", "filter |safe"),
        ({"sms": "Hi {{ first_name "}, "content.sms", "unclosed"),
        ({"email": {"subject": "Hi {{name}}", "text": "x"}}, "content.email.subject", "unknown token {{name}}"),
        ({"email": {"subject": "Hi", "html": "<p>{{dob}}</p>"}}, "content.email.html", "unknown token {{dob}}"),
    ],
)
def test_a_template_naming_an_unknown_token_is_refused_with_422(api, practice, content, field, words):
    ava = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")], emails=[AVA])
    response = _post(api, [ava], content)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"]
    assert not Message.objects.exists() and not Delivery.objects.exists()


def test_allowed_filters_work(api, practice):
    ava = make_patient(practice, "ava", phones=[("+14155550111", "mobile")])
    content = {"sms": 'Hi {{first_name|title}} {{last_name|default:"M."}}, from {{practice_name|upper}}'}
    assert _post(api, [ava], content).status_code == 202
    drain_worker()
    assert SandboxMessage.objects.get().body == "Oak Clinic: Hi Ava M., from OAK CLINIC Reply STOP to opt out."


def test_the_practice_name_counts_towards_a_texts_length(api, practice):
    ava = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    # An automated text may end with how to opt out: that counts too.
    fits = "x" * (1600 - len("Oak Clinic: ") - len(" Reply STOP to opt out."))
    assert _post(api, [ava], {"sms": fits + "x"}).status_code == 422
    assert _post(api, [ava], {"sms": fits}).status_code == 202
    drain_worker()
    assert len(SandboxMessage.objects.get().body) == 1600


def _unsubscribe_links(message):
    assert message["List-Unsubscribe"] is not None
    header = " ".join(str(message["List-Unsubscribe"]).split())  # unfolded
    links = re.findall(r"<([^<>]+)>", header)
    assert header == ", ".join(f"<{link}>" for link in links)  # RFC 2369: comma-separated, each in angle brackets
    https = [link for link in links if link.startswith("http")]
    mailto = [link for link in links if link.startswith("mailto:")]
    assert len(https) == 1 and len(mailto) == 1
    return https[0], mailto[0]


@pytest.mark.parametrize("kind, category", [("broadcast", "announcement"), ("automation", "marketing")])
def test_broadcast_and_marketing_email_carry_one_click_unsubscribe(api, practice, smtp, settings, kind, category):
    settings.CONSENTRY_PUBLIC_URL = "https://consentry.oak-clinic.example"
    settings.CONSENTRY_UNSUBSCRIBE_MAILBOX = "unsubscribe@mail.oak-clinic.example"
    ava = make_patient(practice, "Ava", emails=[AVA], marketing_consent="yes")
    assert _post(api, [ava], {"email": PERSONAL}, kind=kind, category=category).status_code == 202
    drain_worker()
    [message] = smtp.messages()

    https, mailto = _unsubscribe_links(message)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # RFC 8058
    url = urlparse(https)
    assert (url.scheme, url.netloc) == ("https", "consentry.oak-clinic.example")
    assert url.path.startswith("/email/unsubscribe/")
    token = url.path.rsplit("/", 1)[1]
    assert read_unsubscribe_token(token) == (str(practice.pk), AVA)
    assert AVA not in https  # the address cannot be read from the link

    mail_url = urlparse(mailto)
    assert mail_url.path == "unsubscribe@mail.oak-clinic.example"
    [subject] = parse_qs(mail_url.query)["subject"]
    assert read_unsubscribe_token(token_from_mail_subject(unquote(subject))) == (str(practice.pk), AVA)

    # The same link is visible in both parts.
    assert f"unsubscribe: {https}" in message.get_body(("plain",)).get_content()
    assert f'<a href="{https}"' in message.get_body(("html",)).get_content()


@pytest.mark.parametrize(
    "kind, category",
    [("automation", "appointment_reminder"), ("manual", "payment_due"), ("notification", "document_shared")],
)
def test_transactional_email_has_no_unsubscribe(api, practice, smtp, kind, category):
    ava = make_patient(practice, "Ava", emails=[AVA])
    content = {"email": PERSONAL}
    assert _post(api, [ava], content, kind=kind, category=category).status_code == 202
    drain_worker()
    [message] = smtp.messages()
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert "unsubscribe" not in message.get_body(("plain",)).get_content().lower()
    assert "unsubscribe" not in message.get_body(("html",)).get_content().lower()


@pytest.mark.parametrize("html", [False, True])
@pytest.mark.parametrize("name", ["Ava", "<i>Al</i> & Co", 'O\'Brien "Jr"', "Zoë 🦷", ""])
def test_filling_in_tokens_gives_what_the_template_engine_gives(name, html):
    from django.template import Context

    from consentry.messaging import templating

    text = "Hi {{first_name}} {{ last_name }}, from {{practice_name}} ({{practice_phone}})."
    values = {"first_name": name, "last_name": name[::-1], "practice_name": "Oak & Elm", "practice_phone": "+1 415"}
    template = templating._ENGINE.from_string(text)
    assert templating.personalize(text, values, html=html) == template.render(Context(values, autoescape=html))
