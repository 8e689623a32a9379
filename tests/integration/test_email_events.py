"""What comes back from email: SendGrid's event webhook and Inbound Parse through anymail's views,
an SMTP server refusing an address for good, and the SMTP unsubscribe mailbox.

Messages are sent for real (SendGrid's API faked on loopback, a real SMTP
server on loopback); the webhooks get the JSON and form bodies SendGrid posts.
"""

import base64
import json
import logging
import smtplib
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consentry.consent import ledger, tokens
from consentry.consent.ledger import address_status
from consentry.consent.models import ConsentEvent, ConsentNote
from consentry.management.commands.unsubscribe_mailbox import mailbox_controller
from consentry.messaging.models import Delivery, DeliveryEvent
from consentry.messaging.planning import create_message
from consentry.providers.email import address_refused_for_good
from tests.conftest import drain_worker, make_patient
from tests.fakes.smtp import free_port, start_fake_smtp

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailInsecureWebhookWarning"),
]

AVA = "ava@example.com"
SECRET = "sendgrid:3mU9-webhook-password"
TRACKING = "/webhooks/anymail/sendgrid/tracking/"
INBOUND = "/webhooks/anymail/sendgrid/inbound/"
MAILBOX = "unsubscribe@mail.oak-clinic.example"
CONTENT = {"email": {"subject": "Forms to sign", "text": "Hi Ava, two forms are waiting."}}


@pytest.fixture
def sendgrid(sendgrid, settings):
    """The shared SendGrid fake, with the webhook secret SendGrid's calls carry."""
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    return sendgrid


def _send(practice, address=AVA):
    patient = make_patient(practice, emails=[address])
    create_message(
        practice=practice, kind="manual", category="document_shared", patient_ids=[patient.pk], content=CONTENT
    )
    drain_worker()
    delivery = Delivery.objects.get(patient=patient)
    assert delivery.status == "sent" and delivery.provider_ref
    return delivery


def _auth(secret=SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()} if secret else {}


def _post_events(client, events, secret=SECRET, **headers):
    body = events if isinstance(events, str | bytes) else json.dumps(events)
    return client.post(TRACKING, body, content_type="application/json", **_auth(secret), **headers)


_ids = iter(range(1, 10**6))


def sg_event(kind, delivery, **fields):
    """One event as SendGrid's event webhook posts it; anymail's id rides along as a custom arg."""
    n = next(_ids)
    return {
        "email": delivery.address,
        "timestamp": 1735732800 + n,
        "event": kind,
        "smtp-id": f"<fake{n}@ismtpd-0001>",
        "sg_event_id": f"ZGVsaXZlcmVkLTAtNDQ1{n:07d}",
        "sg_message_id": f"fake{n:018d}.filterdrecv-5645d9c87f-2ddh8-1-64F2A1B3-3.0",
        "anymail_id": delivery.provider_ref,
        **fields,
    }


def _history(delivery):
    return list(DeliveryEvent.objects.filter(delivery=delivery).values_list("status", "provider_status"))


def _email_state(practice, address=AVA):
    return address_status(practice.pk, address).email


# --- tracking -----------------------------------------------------------------------------------------------------


def test_delivered_moves_the_delivery(client, practice, sendgrid):
    delivery = _send(practice)
    response = _post_events(
        client, [sg_event("processed", delivery), sg_event("delivered", delivery, response="250 2.0.0 OK  1735732800 ")]
    )
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.delivered_at is not None
    assert _history(delivery) == [("sent", "accepted"), ("delivered", "delivered")]
    assert _email_state(practice) == "subscribed"


def test_a_hard_bounce_fails_the_delivery_and_bounces_the_address(client, practice, sendgrid):
    delivery = _send(practice)
    reason = "550 5.1.1 The email account that you tried to reach does not exist."
    bounce = sg_event(
        "bounce", delivery, type="bounce", status="5.1.1", reason=reason, bounce_classification="Invalid Address"
    )
    assert _post_events(client, [bounce]).status_code == 200

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.error == f"bounced: {reason}"
    assert _history(delivery)[-1] == ("failed", "bounced")
    assert _email_state(practice) == "bounced"
    [event] = ConsentEvent.objects.filter(practice=practice, address=AVA)
    assert (event.subject, event.state, event.source, event.actor) == ("email", "bounced", "esp_webhook", "SendGrid")
    assert event.evidence["esp_event_id"] == bounce["sg_event_id"]
    assert event.evidence["mta_response"] == reason
    assert event.evidence["delivery_id"] == delivery.pk

    # The next email to the address is not sent.
    patient = delivery.patient
    planned = create_message(
        practice=practice, kind="manual", category="document_shared", patient_ids=[patient.pk], content=CONTENT
    )
    assert [(d.channel, d.status, d.reason) for d in planned.deliveries] == [("email", "skipped", "email_bounced")]


def test_a_block_by_the_receiving_server_fails_the_delivery_but_keeps_the_address(client, practice, sendgrid):
    delivery = _send(practice)
    blocked = sg_event(
        "bounce",
        delivery,
        type="blocked",
        status="5.7.1",
        reason="550 5.7.1 Service unavailable; client host blocked using Spamhaus",
    )
    assert _post_events(client, [blocked]).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "Spamhaus" in delivery.error
    assert _email_state(practice) == "subscribed"
    assert not ConsentEvent.objects.filter(practice=practice).exists()


def test_a_dropped_message_fails_without_touching_the_address(client, practice, sendgrid):
    delivery = _send(practice)
    dropped = sg_event("dropped", delivery, reason="Invalid SMTPAPI header", status="5.0.0")
    assert _post_events(client, [dropped]).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert DeliveryEvent.objects.filter(delivery=delivery).last().error_code == "other"
    assert _email_state(practice) == "subscribed"


def test_a_spam_complaint_unsubscribes_the_address(client, practice, sendgrid):
    delivery = _send(practice)
    _post_events(client, [sg_event("delivered", delivery)])
    complaint = sg_event("spamreport", delivery)
    assert _post_events(client, [complaint]).status_code == 200

    assert _email_state(practice) == "unsubscribed"
    [event] = ConsentEvent.objects.filter(practice=practice, address=AVA)
    assert (event.state, event.source) == ("unsubscribed", "esp_webhook")
    assert event.evidence["complaint"] is True and event.evidence["event"] == "complained"
    assert event.evidence["esp_event_id"] == complaint["sg_event_id"]
    delivery.refresh_from_db()
    assert delivery.status == "delivered"  # the message did arrive
    assert _history(delivery)[-1] == ("delivered", "complained")


def test_an_esp_unsubscribe_unsubscribes_the_address(client, practice, sendgrid):
    delivery = _send(practice)
    assert _post_events(client, [sg_event("group_unsubscribe", delivery, asm_group_id=42)]).status_code == 200
    event = ConsentEvent.objects.get(practice=practice, address=AVA)
    assert (event.state, event.source, event.evidence["complaint"]) == ("unsubscribed", "esp_webhook", False)


def test_a_deferral_is_history_only(client, practice, sendgrid):
    delivery = _send(practice)
    events = [
        sg_event("deferred", delivery, response="451 4.7.1 Greylisted, try again later", attempt=str(n)) for n in (1, 2)
    ]
    assert _post_events(client, events).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert _history(delivery) == [("sent", "accepted"), ("sent", "deferred #1"), ("sent", "deferred #2")]


def test_statuses_never_move_back(client, practice, sendgrid):
    delivery = _send(practice)
    _post_events(client, [sg_event("delivered", delivery)])
    _post_events(client, [sg_event("deferred", delivery, attempt="1", response="421 try later")])
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_a_repeated_event_changes_nothing_the_second_time(client, practice, sendgrid):
    delivery = _send(practice)
    bounce = sg_event("bounce", delivery, type="bounce", status="5.1.1", reason="550 5.1.1 User unknown")
    delivered = sg_event("delivered", delivery)
    assert _post_events(client, [bounce, bounce]).status_code == 200
    assert _post_events(client, [bounce, delivered]).status_code == 200  # the ESP tries the batch again
    assert _post_events(client, [delivered]).status_code == 200

    assert ConsentEvent.objects.filter(practice=practice, address=AVA).count() == 1
    assert _history(delivery) == [("sent", "accepted"), ("failed", "bounced"), ("delivered", "delivered")]
    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_an_event_for_an_unknown_message_is_answered_200_and_recorded_nowhere(client, practice, sendgrid, caplog):
    delivery = _send(practice)
    stranger = sg_event("bounce", delivery, type="bounce", reason="550 5.1.1 User unknown")
    stranger["anymail_id"] = "9b7c1a52-5f3e-4d39-9d53-0c1f6a0e2b11"
    without_id = sg_event("spamreport", delivery)
    del without_id["anymail_id"]
    with caplog.at_level(logging.WARNING, logger="consentry.email_events"):
        assert _post_events(client, [stranger, without_id]).status_code == 200
    assert "unknown message '9b7c1a52-5f3e-4d39-9d53-0c1f6a0e2b11'" in caplog.text
    assert _history(delivery) == [("sent", "accepted")]
    assert not ConsentEvent.objects.filter(practice=practice).exists()


@pytest.mark.parametrize("secret", ["sendgrid:wrong-password", "", "nouser"])
def test_a_wrong_or_missing_secret_is_refused_and_changes_nothing(client, practice, sendgrid, secret):
    delivery = _send(practice)
    response = _post_events(client, [sg_event("bounce", delivery, type="bounce", reason="550 5.1.1 x")], secret)
    assert response.status_code == 400
    delivery.refresh_from_db()
    assert delivery.status == "sent" and _history(delivery) == [("sent", "accepted")]
    assert _email_state(practice) == "subscribed"


def test_without_a_configured_secret_every_webhook_is_refused(client, practice, sendgrid, settings, caplog):
    delivery = _send(practice)
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "WEBHOOK_SECRET"}
    with caplog.at_level(logging.ERROR, logger="consentry.email_events"):
        response = _post_events(client, [sg_event("spamreport", delivery)])
    assert response.status_code == 403
    assert "CONSENTRY_ANYMAIL_WEBHOOK_SECRET" in caplog.text
    form = {"headers": f"Subject: unsubscribe {tokens.unsubscribe_token(practice.pk, AVA)}\n", "to": MAILBOX}
    assert client.post(INBOUND, form).status_code == 403
    assert _email_state(practice) == "subscribed"
    delivery.refresh_from_db()
    assert _history(delivery) == [("sent", "accepted")]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"event": "delivered"}',
        b'[{"email": "ava@example.com"}]',
        b'["delivered"]',
        b'[{"event": "delivered", "timestamp": "yesterday"}]',
        b"\xff\xfe",
        b'[{"event": "delivered", "timestamp": 1e300}]',
    ],
)
def test_a_body_sendgrid_would_never_send_is_a_400(client, practice, sendgrid, body):
    delivery = _send(practice)
    assert _post_events(client, body).status_code == 400
    assert _history(delivery) == [("sent", "accepted")]


# Any text, and text with lone surrogates and control characters (JSON carries them; nothing can store them).
texts = st.text(max_size=20) | st.text(st.characters(categories=["Cs", "Cc", "L", "N", "P", "Z"]), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=4),
    max_leaves=10,
)
event_like = st.fixed_dictionaries(
    {"event": st.sampled_from(["delivered", "bounce", "deferred", "dropped", "spamreport", "unsubscribe", "open"])},
    optional={
        "anymail_id": json_values,
        "sg_event_id": json_values,
        "reason": json_values,
        "type": json_values,
        "timestamp": json_values,
        "attempt": json_values,
        "email": json_values,
        "response": json_values,
    },
)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, st.lists(event_like, max_size=3)))
def test_random_authenticated_bodies_never_500(client, practice, sendgrid, body):
    assert _post_events(client, body).status_code in (200, 400)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event_like, min_size=1, max_size=3))
def test_random_events_about_a_real_delivery_never_500(client, practice, sendgrid, events):
    """Events that reach the handlers (a delivery of ours), with any text in any field."""
    delivery = Delivery.objects.filter(channel="email").first() or _send(practice)
    for event in events:
        event["anymail_id"] = delivery.provider_ref
    assert _post_events(client, events).status_code in (200, 400)


# SendGrid's signed event webhook: ECDSA P-256 over timestamp + body, checked by anymail.


@pytest.fixture
def signing_key(settings, sendgrid):
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    settings.ANYMAIL = {
        **{k: v for k, v in settings.ANYMAIL.items() if k != "WEBHOOK_SECRET"},
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": base64.b64encode(public).decode(),
    }
    return key


def _signed(key, body: bytes, timestamp="1735732800") -> dict:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": base64.b64encode(signature).decode(),
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp,
    }


def test_a_signed_event_webhook_needs_no_basic_auth(client, practice, signing_key):
    delivery = _send(practice)
    body = json.dumps([sg_event("delivered", delivery)]).encode()
    assert _post_events(client, body, secret=None, **_signed(signing_key, body)).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_a_wrong_signature_is_refused(client, practice, signing_key):
    delivery = _send(practice)
    signed = json.dumps([sg_event("delivered", delivery)]).encode()
    forged = json.dumps([sg_event("bounce", delivery, type="bounce", reason="550 5.1.1 x")]).encode()
    assert _post_events(client, forged, secret=None, **_signed(signing_key, signed)).status_code == 400
    assert _post_events(client, forged, secret=None).status_code == 400  # no signature at all
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert _post_events(client, forged, secret=None, **_signed(other_key, forged)).status_code == 400
    delivery.refresh_from_db()
    assert delivery.status == "sent" and _email_state(practice) == "subscribed"


def test_an_unreadable_verification_key_refuses_with_a_clear_error(client, practice, sendgrid, settings, caplog):
    settings.ANYMAIL = {"SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": "not-a-key"}
    with caplog.at_level(logging.ERROR, logger="consentry.email_events"):
        assert _post_events(client, [], secret=None).status_code == 403
    assert "verification key cannot be read" in caplog.text


# --- SMTP: a recipient refused for good -----------------------------------------------------------------------------


@pytest.fixture
def smtp(settings, practice):
    fake, controller = start_fake_smtp()
    settings.CONSENTRY_SMTP_HOST, settings.CONSENTRY_SMTP_PORT = fake.host, fake.port
    practice.email_provider = "smtp"
    practice.save()
    yield fake
    controller.stop()


def _send_failing(practice):
    patient = make_patient(practice, emails=[AVA])
    create_message(
        practice=practice, kind="manual", category="document_shared", patient_ids=[patient.pk], content=CONTENT
    )
    drain_worker()
    return Delivery.objects.get(patient=patient)


def test_an_smtp_550_user_unknown_fails_the_delivery_and_bounces_the_address(practice, smtp):
    reply = "550 5.1.1 <ava@example.com>: Recipient address rejected: User unknown in local recipient table"
    smtp.refuse[AVA] = reply
    delivery = _send_failing(practice)
    assert delivery.status == "failed" and delivery.reason == "email_bounced"
    assert delivery.error.startswith("smtp_5xx: 550 5.1.1")
    assert _email_state(practice) == "bounced"
    [event] = ConsentEvent.objects.filter(practice=practice, address=AVA)
    assert (event.state, event.source, event.actor) == ("bounced", "carrier", "mail server")
    assert event.evidence["smtp_code"] == 550
    assert event.evidence["smtp_reply"] == reply.removeprefix("550 ")
    assert event.evidence["delivery_id"] == delivery.pk


def test_an_smtp_refusal_about_us_not_the_address_leaves_it_subscribed(practice, smtp):
    smtp.refuse[AVA] = "550 5.7.1 <ava@example.com>: Relay access denied"
    delivery = _send_failing(practice)
    assert delivery.status == "failed" and delivery.reason == ""
    assert _email_state(practice) == "subscribed"
    assert not ConsentEvent.objects.filter(practice=practice).exists()


@pytest.mark.parametrize(
    ("code", "reply", "bounced"),
    [
        (550, "5.1.1 The email account that you tried to reach does not exist.", True),  # Gmail
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", True),  # Outlook
        (553, "5.1.3 The recipient address <a@@b> is not a valid RFC-5321 address.", True),
        (550, "Unrouteable address", True),  # Exim, no enhanced code
        (550, "No such user here", True),
        (551, "User not local; please try <forward@example.org>", True),
        (550, "5.7.1 Relaying denied", False),
        (553, "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", False),  # qmail
        (554, "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org", False),
        (552, "5.2.2 Mailbox full", False),
        (450, "4.1.1 User unknown (try again later)", False),  # not permanent
    ],
)
def test_which_smtp_refusals_are_hard_bounces(code, reply, bounced):
    assert address_refused_for_good(code, reply.encode()) is bounced


# --- the unsubscribe mailbox ----------------------------------------------------------------------------------------


def _inbound_parse_form(subject: str, sender=f"Ava Rivera <{AVA}>") -> dict:
    """SendGrid Inbound Parse's default (parsed) fields for a plain-text message."""
    headers = (
        "Received: by mx0031p1las1.sendgrid.net with SMTP id 7TbG4vB3qA Wed, 01 Jan 2025 12:00:00 +0000 (UTC)\n"
        f"From: {sender}\nTo: {MAILBOX}\nSubject: {subject}\n"
        "Date: Wed, 1 Jan 2025 12:00:00 +0000\nMessage-ID: <CAF1x2y3z@mail.example.com>\n"
        'MIME-Version: 1.0\nContent-Type: text/plain; charset="UTF-8"\n'
    )
    return {
        "headers": headers,
        "dkim": "{@example.com : pass}",
        "to": MAILBOX,
        "from": sender,
        "subject": subject,
        "text": "This message was sent to unsubscribe.\n",
        "sender_ip": "209.85.220.41",
        "envelope": json.dumps({"to": [MAILBOX], "from": AVA}),
        "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8", "text": "UTF-8"}),
        "SPF": "pass",
        "spam_score": "0.1",
        "spam_report": "Spam detection software...",
        "attachments": "0",
    }


def test_mail_to_the_unsubscribe_mailbox_unsubscribes(client, practice, sendgrid):
    subject = f"unsubscribe {tokens.unsubscribe_token(practice.pk, AVA)}"
    response = client.post(INBOUND, _inbound_parse_form(subject), **_auth())
    assert response.status_code == 200
    assert _email_state(practice) == "unsubscribed"
    [event] = ConsentEvent.objects.filter(practice=practice, address=AVA)
    assert (event.state, event.source, event.actor) == ("unsubscribed", "mailto_unsubscribe", AVA)
    # The mail's subject is free text: an encrypted note beside the ledger, not in it.
    assert event.evidence == {"from": AVA, "note": ConsentNote.objects.get().pk}
    assert ledger.notes([event]) == {event.pk: subject}


def test_the_token_comes_from_the_list_unsubscribe_mailto(client, practice, sendgrid, settings):
    settings.CONSENTRY_UNSUBSCRIBE_MAILBOX = MAILBOX
    mailto = tokens.unsubscribe_mailto(practice.pk, AVA)
    address, _, query = mailto.removeprefix("mailto:").partition("?subject=")
    assert address == MAILBOX
    from urllib.parse import unquote

    subject = "Re: " + unquote(query)  # what a mail client sends when the mailto is followed
    assert client.post(INBOUND, _inbound_parse_form(subject), **_auth()).status_code == 200
    assert _email_state(practice) == "unsubscribed"


@pytest.mark.parametrize("subject", ["unsubscribe", "please unsubscribe me", "unsubscribe TAMPERED", ""])
def test_mail_without_a_valid_token_changes_nothing(client, practice, sendgrid, subject):
    token = tokens.unsubscribe_token(practice.pk, AVA)
    subject = subject.replace("TAMPERED", token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB"))
    assert client.post(INBOUND, _inbound_parse_form(subject), **_auth()).status_code == 200
    assert _email_state(practice) == "subscribed"
    assert not ConsentEvent.objects.filter(practice=practice).exists()


def test_an_inbound_post_without_the_secret_changes_nothing(client, practice, sendgrid):
    form = _inbound_parse_form(f"unsubscribe {tokens.unsubscribe_token(practice.pk, AVA)}")
    assert client.post(INBOUND, form).status_code == 400
    assert client.post(INBOUND, form, **_auth("sendgrid:guess")).status_code == 400
    assert _email_state(practice) == "subscribed"


def test_an_inbound_post_that_is_no_parsed_mail_is_a_400(client, practice, sendgrid):
    assert client.post(INBOUND, {"to": MAILBOX, "text": "hello"}, **_auth()).status_code == 400


@pytest.fixture
def mailbox(settings, db):
    """The command's SMTP server on loopback, recording on the test's database connection.

    As Django's live-server tests do, the server's database thread shares the
    test's connection, so that what it writes is inside the test's transaction.
    """
    settings.CONSENTRY_UNSUBSCRIBE_MAILBOX = MAILBOX
    shared, sharing = connections["default"], []

    def share_connection():
        shared.inc_thread_sharing()
        sharing.append(True)
        connections["default"] = shared

    executor = ThreadPoolExecutor(max_workers=1, initializer=share_connection)
    controller = mailbox_controller("127.0.0.1", free_port(), executor)
    controller.start()
    yield controller
    controller.stop()
    executor.shutdown()
    for _ in sharing:
        shared.dec_thread_sharing()


def _mail(controller, subject, to=MAILBOX):
    body = f"From: Ava Rivera <{AVA}>\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nPlease unsubscribe me.\r\n"
    with smtplib.SMTP(controller.hostname, controller.port, timeout=10) as server:
        return server.sendmail(AVA, [to], body.encode())


def test_the_smtp_mailbox_unsubscribes(practice, mailbox):
    token = tokens.unsubscribe_token(practice.pk, AVA)
    _mail(mailbox, f"unsubscribe {'x' + token[1:]}")  # altered: accepted, and nothing happens
    assert _email_state(practice) == "subscribed"
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _mail(mailbox, f"unsubscribe {token}", to="someone-else@mail.oak-clinic.example")
    assert _email_state(practice) == "subscribed"

    assert _mail(mailbox, f"unsubscribe {token}") == {}
    assert _email_state(practice) == "unsubscribed"
    [event] = ConsentEvent.objects.filter(practice=practice, address=AVA)
    assert (event.source, event.actor, event.evidence["from"]) == ("mailto_unsubscribe", AVA, AVA)
