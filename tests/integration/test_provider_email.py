import re

"""Email through Django's email framework: a real SMTP server on loopback, and SendGrid's API faked on loopback."""

import socket

import pytest

from consentry.messaging.models import Delivery, DeliveryEvent
from consentry.messaging.planning import create_message
from consentry.providers.base import Outbound, ProviderError
from consentry.providers.email import AnymailProvider, EmailProvider
from tests.conftest import drain_worker, make_patient

pytestmark = [
    pytest.mark.django_db,
    # anymail warns that it no longer tests its SendGrid backend; the backend itself is unchanged.
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]

AVA = "ava@example.com"
CONTENT = {
    "email": {
        "subject": "Forms to sign",
        "text": "Hi Ava, two forms are waiting.",
        "html": "<p>Hi Ava, <b>two forms</b> are waiting.</p>",
    }
}


def _send(practice, patient, content=CONTENT):
    planned = create_message(
        practice=practice, kind="manual", category="document_shared", patient_ids=[patient.pk], content=content
    )
    assert [(d.channel, d.status) for d in planned.deliveries] == [("email", "pending")]
    drain_worker()
    return Delivery.objects.get()


def _outbound(practice, to=AVA, subject="Hello", body="Hi", html=""):
    return Outbound(
        practice_id=str(practice.pk),
        delivery_id=1,
        channel="email",
        to=to,
        sender=f"{practice.name} <noreply@localhost>",
        body=body,
        subject=subject,
        html=html,
    )


def _history(delivery):
    return list(DeliveryEvent.objects.filter(delivery=delivery).values_list("status", "provider_status"))


# --- SMTP ------------------------------------------------------------------------------------------------------


def test_an_email_reaches_the_smtp_server_with_text_and_html_parts(practice, smtp):
    patient = make_patient(practice, emails=[AVA])
    delivery = _send(practice, patient)

    [received] = smtp.received
    assert received.mail_from == "noreply@localhost" and received.rcpt_tos == [AVA]
    message = received.message()
    assert message["From"] == "Oak Clinic <noreply@localhost>"
    assert message["To"] == AVA
    assert message["Subject"] == "Forms to sign"
    assert message.get_content_type() == "multipart/alternative"
    # The content inside the practice's layout: its name and phone below, no unsubscribe on a transactional email.
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    body, settings_line = text.rsplit("\n", 2)[0], text.rsplit("\n", 2)[1]
    assert body == "Hi Ava, two forms are waiting.\n\n--\nOak Clinic · +14155550100"
    # Every email to a patient links their portal's settings.
    assert re.fullmatch(r"Your notification settings: http://127\.0\.0\.1:8000/portal/\S+", settings_line)
    html = message.get_body(("html",)).get_content()
    assert "<p>Hi Ava, <b>two forms</b> are waiting.</p>" in html and "Unsubscribe" not in html
    assert message["List-Unsubscribe"] is None

    assert delivery.status == "sent"
    assert message["Message-ID"].endswith("@consentry.local>")
    assert delivery.provider_ref == message["Message-ID"]
    assert _history(delivery) == [("sent", "accepted")]


def test_the_practice_address_is_the_sender_and_text_only_mail_gets_an_html_part(practice, smtp, settings):
    settings.CONSENTRY_EMAIL_MESSAGE_ID_DOMAIN = "mail.oak-clinic.example"
    practice.email_from = "frontdesk@oak-clinic.example"
    practice.save()
    patient = make_patient(practice, emails=[AVA])
    delivery = _send(practice, patient, {"email": {"subject": "Receipt", "text": "Thank you."}})
    [message] = smtp.messages()
    assert message["From"] == "Oak Clinic <frontdesk@oak-clinic.example>"  # the practice's name by default
    assert smtp.received[0].mail_from == "frontdesk@oak-clinic.example"
    assert message.get_body(("plain",)).get_content().startswith("Thank you.\r\n")
    assert "<p>Thank you.</p>" in message.get_body(("html",)).get_content()
    assert delivery.provider_ref == message["Message-ID"] and delivery.provider_ref.endswith(
        "@mail.oak-clinic.example>"
    )


def test_a_practice_name_with_a_comma_stays_one_sender(practice, smtp):
    practice.name = "Smith, Jones & Söhne Pediatrics"
    practice.save()
    EmailProvider(practice).send(_outbound(practice, subject="Two\r\nlines"))
    [message] = smtp.messages()
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Smith, Jones & Söhne Pediatrics", "noreply@localhost")
    assert message["Subject"] == "Two lines"


def test_a_recipient_the_server_refuses_for_good_fails_the_delivery(practice, smtp):
    smtp.refuse[AVA] = "550 5.1.1 <ava@example.com>: Recipient address rejected: User unknown"
    patient = make_patient(practice, emails=[AVA])
    delivery = _send(practice, patient)
    assert delivery.status == "failed"
    assert delivery.error.startswith("smtp_5xx: 550 5.1.1")
    assert smtp.received == []
    with pytest.raises(ProviderError) as refused:
        EmailProvider(practice).send(_outbound(practice))
    assert (refused.value.code, refused.value.transient) == ("smtp_5xx", False)


def test_a_server_that_never_greets_times_out_as_transient(practice, settings):
    with socket.socket() as silent:  # accepts connections (the backlog does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings.CONSENTRY_SMTP_HOST, settings.CONSENTRY_SMTP_PORT = silent.getsockname()
        settings.CONSENTRY_EMAIL_TIMEOUT = 0.2
        with pytest.raises(ProviderError) as timed_out:
            EmailProvider(practice).send(_outbound(practice))
    assert (timed_out.value.code, timed_out.value.transient) == ("smtp_unreachable", True)


def test_no_answer_after_the_message_was_handed_over_is_an_unknown_outcome(practice, smtp, settings):
    smtp.data_delay = 1.0  # the server keeps the message and answers too late
    settings.CONSENTRY_EMAIL_TIMEOUT = 0.3
    with pytest.raises(ProviderError) as unknown:
        EmailProvider(practice).send(_outbound(practice))
    # It may well have been taken: sending again could deliver it twice.
    assert (unknown.value.code, unknown.value.transient) == ("outcome_unknown", False)
    assert len(smtp.received) == 1


# --- SendGrid's v3 API through django-anymail -------------------------------------------------------------------


def test_an_email_goes_to_sendgrids_mail_send_api(practice, sendgrid):
    patient = make_patient(practice, emails=[AVA])
    delivery = _send(practice, patient)

    [sent] = sendgrid.requests
    [personalization] = sent["personalizations"]
    assert personalization["to"] == [{"email": AVA}]
    assert sent["from"] == {"email": "noreply@localhost", "name": "Oak Clinic"}
    assert sent["subject"] == "Forms to sign"
    text, html = sent["content"]
    assert text["type"] == "text/plain"
    assert text["value"].startswith(
        "Hi Ava, two forms are waiting.\n\n--\nOak Clinic · +14155550100\nYour notification settings: "
    )
    assert html["type"] == "text/html" and "<p>Hi Ava, <b>two forms</b> are waiting.</p>" in html["value"]
    # anymail gives each message its own id and has SendGrid carry it in every tracking event.
    assert delivery.status == "sent"
    assert delivery.provider_ref == personalization["custom_args"]["anymail_id"]
    assert _history(delivery) == [("sent", "accepted")]


def test_a_request_sendgrid_refuses_fails_the_delivery(practice, sendgrid):
    sendgrid.errors.append(
        (
            400,
            {
                "errors": [
                    {
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email",
                        "help": None,
                    }
                ]
            },
        )
    )
    patient = make_patient(practice, emails=[AVA])
    delivery = _send(practice, patient)
    assert delivery.status == "failed"
    assert delivery.error.startswith("anymail_400")
    assert "Does not contain a valid address." in delivery.error


def test_a_wrong_api_key_is_a_permanent_error(practice, sendgrid, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "SENDGRID_API_KEY": "SG.wrong"}
    with pytest.raises(ProviderError) as refused:
        AnymailProvider(practice).send(_outbound(practice))
    assert (refused.value.code, refused.value.transient) == ("anymail_401", False)


def test_without_an_api_key_the_anymail_provider_fails_the_delivery(practice, settings):
    settings.ANYMAIL = {}
    practice.email_provider = "anymail"
    practice.save()
    patient = make_patient(practice, emails=[AVA])
    delivery = _send(practice, patient)
    assert delivery.status == "failed"
    assert delivery.error.startswith("anymail_not_configured")
