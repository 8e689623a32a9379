"""The contract every provider keeps, checked for each one in ``PROVIDERS`` against the far end it talks to.

Each provider is paired with what receives its messages: Twilio's REST API on
loopback (tests/fakes/twilio.py), a real SMTP server on loopback
(tests/fakes/smtp.py), SendGrid's Mail Send API on loopback through anymail
(tests/fakes/sendgrid.py), and for the providers with no remote, the rows they
store (SandboxMessage, InAppNotice). A small adapter per provider configures the
practice for it and reads back what arrived, as the far end saw it on the wire.

A provider added to ``PROVIDERS`` without an adapter here fails the suite.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from email.utils import parseaddr
from xml.etree import ElementTree

import pytest
from django.utils.module_loading import import_string

from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.patients.models import Practice
from consentry.providers.base import PROVIDERS, Outbound, ProviderError, SendResult, provider_for
from consentry.providers.models import InAppNotice, SandboxMessage
from tests.conftest import drain_worker, make_patient
from tests.fakes.smtp import free_port

pytestmark = [
    pytest.mark.django_db,
    # anymail warns that it no longer tests its SendGrid backend; the backend itself is unchanged.
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]

PHONE = "+14155550111"
EMAIL = "ava@example.com"
# Every channel a practice can route to a provider of its choice (in-app always goes to the portal's own store).
ROUTABLE = ("sms", "voice", "email")

BODY = "Your forms are ready to sign."
SUBJECT = "Forms to sign"
HTML = "<p>Your <b>forms</b> are ready to sign.</p>"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://consentry.example/u/tok3n>, <mailto:unsubscribe@mail.oak-clinic.example?subject=tok3n>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
UNICODE_BODY = "Grüße, José! Ваш приём завтра · 予約は明日です 👩‍⚕️💉✅ ça va?"
UNICODE_SUBJECT = "Rappel : votre rendez-vous 📅 demain"
UNICODE_HTML = "<p>Grüße, José — 予約は明日です 👩‍⚕️💉</p>"

_delivery_ids = itertools.count(10_000)


@dataclass
class Arrived:
    """One message as the far end received it."""

    ref: str  # the id the far end knows it by
    to: list[str]  # every place the recipient is named (SMTP: envelope and To header)
    sender: tuple[str, str]  # (display name, address or number)
    body: str
    subject: str = ""
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _sender(channel: str, sender: str) -> tuple[str, str]:
    """A sender as (display name, address): an email's ``Name <addr>`` parsed, a number or name as is."""
    return parseaddr(sender) if channel == "email" else ("", sender)


def _wire_text(text: str) -> str:
    """A MIME text part as written: CRLF line ends (SMTP's), one line end closing the part."""
    text = text.replace("\r\n", "\n")
    return text[:-1] if text.endswith("\n") else text


# --- one adapter per provider -------------------------------------------------------------------------------------


class Adapter(ABC):
    """How the suite drives one provider and reads what reached the far end."""

    name: str
    primary: str  # the channel sent end to end through the worker, and refused by the remote
    fixture: str | None = None  # the fixture that starts the fake and points the practice at it

    def __init__(self, practice, fake):
        self.practice = practice
        self.fake = fake
        self.patient = make_patient(practice, first_name="Ava", phones=[(PHONE, "mobile")], emails=[EMAIL])

    def address(self, channel: str) -> str:
        return {"sms": PHONE, "voice": PHONE, "email": EMAIL, "in_app": str(self.patient.pk)}[channel]

    @abstractmethod
    def arrived(self) -> list[Arrived]:
        """Every message the far end received, oldest first."""


class RemoteAdapter(Adapter):
    """A provider that talks to a service over the network, which can be down or say no."""

    @abstractmethod
    def make_unreachable(self, settings) -> str:
        """Point the provider at a closed port; return the error code expected."""

    @abstractmethod
    def refuse(self, to: str, status: int) -> tuple[str, str]:
        """Have the far end refuse a message to ``to`` with this status; return (expected code, its words)."""


class SandboxAdapter(Adapter):
    name = "sandbox"
    primary = "sms"

    def __init__(self, practice, fake):
        practice.sms_provider = practice.email_provider = "sandbox"
        practice.save()
        super().__init__(practice, fake)

    def arrived(self):
        return [
            Arrived(
                ref=row.ref,
                to=[row.to],
                sender=_sender(row.channel, row.sender),
                body=row.body,
                subject=row.subject,
                html=row.html,
                headers=row.headers,
            )
            for row in SandboxMessage.objects.filter(practice_id=self.practice.pk).order_by("pk")
        ]


class InAppAdapter(Adapter):
    name = "in_app"
    primary = "in_app"

    def arrived(self):
        names = dict(Practice.objects.values_list("pk", "name"))
        return [
            Arrived(
                ref=f"IN{notice.pk:032d}",
                to=[str(notice.patient_id)],
                sender=("", names[notice.practice_id]),
                body=notice.body,
                subject=notice.subject,
            )
            for notice in InAppNotice.objects.filter(practice_id=self.practice.pk).order_by("pk")
        ]


class TwilioAdapter(RemoteAdapter):
    name = "twilio"
    primary = "sms"
    fixture = "twilio"
    ERROR_CODES = {400: 21211, 429: 20429, 500: 20500, 503: 20503}

    def arrived(self):
        arrived = []
        for request in self.fake.requests:
            if "sid" not in request:
                continue  # refused
            form = request["form"]
            if request["resource"] == "Calls":
                # What the call says: the text of the TwiML's <Say> verbs.
                body = " ".join(say.text or "" for say in ElementTree.fromstring(form["Twiml"]).iter("Say"))
            else:
                body = form["Body"]
            arrived.append(Arrived(ref=request["sid"], to=[form["To"]], sender=("", form["From"]), body=body))
        return arrived

    def make_unreachable(self, settings):
        settings.CONSENTRY_TWILIO_API_BASE = f"http://127.0.0.1:{free_port()}"
        return "twilio_unreachable"

    def refuse(self, to, status):
        code = self.ERROR_CODES[status]
        words = {400: "Invalid 'To' Phone Number", 429: "Too Many Requests"}.get(status, "Service Unavailable")
        self.fake.errors[to] = (status, code, words)
        return str(code), words


class SMTPAdapter(RemoteAdapter):
    name = "smtp"
    primary = "email"
    fixture = "smtp"
    REPLIES = {
        550: "550 5.1.1 <ava@example.com>: Recipient address rejected: User unknown",
        554: "554 5.7.1 <ava@example.com>: Relay access denied",
        450: "450 4.2.1 Mailbox busy, try again later",
        451: "451 4.7.1 Greylisted, try again later",
    }

    def arrived(self):
        arrived = []
        for received in self.fake.received:
            message = received.message()
            [sender] = message["From"].addresses
            html = message.get_body(("html",))
            arrived.append(
                Arrived(
                    ref=message["Message-ID"],
                    to=[*received.rcpt_tos, *(a.addr_spec for a in message["To"].addresses)],
                    sender=(sender.display_name, sender.addr_spec),
                    body=_wire_text(message.get_body(("plain",)).get_content()),
                    subject=str(message["Subject"]),
                    html=_wire_text(html.get_content()) if html is not None else "",
                    headers={name: str(value) for name, value in message.items()},
                )
            )
        return arrived

    def make_unreachable(self, settings):
        settings.CONSENTRY_SMTP_PORT = free_port()
        return "smtp_unreachable"

    def refuse(self, to, status):
        reply = self.REPLIES[status]
        self.fake.refuse[to] = reply
        return ("smtp_4xx" if status < 500 else "smtp_5xx"), reply


class AnymailAdapter(RemoteAdapter):
    name = "anymail"
    primary = "email"
    fixture = "sendgrid"

    def arrived(self):
        arrived = []
        for sent in self.fake.accepted:
            content = {part["type"]: part["value"] for part in sent["content"]}
            [personalization] = sent["personalizations"]
            arrived.append(
                Arrived(
                    ref=personalization["custom_args"]["anymail_id"],
                    to=[to["email"] for to in personalization["to"]],
                    sender=(sent["from"].get("name", ""), sent["from"]["email"]),
                    body=content["text/plain"],
                    subject=sent["subject"],
                    html=content.get("text/html", ""),
                    headers=sent.get("headers", {}),
                )
            )
        return arrived

    def make_unreachable(self, settings):
        settings.ANYMAIL = {**settings.ANYMAIL, "SENDGRID_API_URL": f"http://127.0.0.1:{free_port()}/v3/"}
        return "anymail_unreachable"

    def refuse(self, to, status):
        words = {400: "Does not contain a valid address.", 413: "Payload Too Large", 429: "too many requests"}.get(
            status, "Internal Server Error"
        )
        self.fake.errors.append((status, {"errors": [{"message": words, "field": None, "help": None}]}))
        return f"anymail_{status}", words


ADAPTERS: dict[str, type[Adapter]] = {
    a.name: a for a in (SandboxAdapter, TwilioAdapter, SMTPAdapter, AnymailAdapter, InAppAdapter)
}

# Providers that hand messages to a remote service, and how its refusals must read:
# (provider, the remote's status: HTTP or SMTP reply code, whether trying again later may work).
REMOTE_REFUSALS = [
    ("twilio", 400, False),
    ("twilio", 429, True),
    ("twilio", 500, True),
    ("twilio", 503, True),
    ("smtp", 550, False),
    ("smtp", 554, False),
    ("smtp", 450, True),
    ("smtp", 451, True),
    ("anymail", 400, False),
    ("anymail", 413, False),
    ("anymail", 429, True),
    ("anymail", 500, True),
    ("anymail", 503, True),
]
REMOTE = sorted({name for name, _, _ in REMOTE_REFUSALS})
# Providers with no remote to be unreachable or to refuse: they write to this database.
LOCAL = {"sandbox": "records the message in SandboxMessage", "in_app": "stores an InAppNotice for the portal"}


def _provider_class(name):
    return import_string(PROVIDERS[name])


def _channels(name) -> list[str]:
    return sorted(_provider_class(name).channels)


CARRIED = [(name, channel) for name in sorted(PROVIDERS) for channel in _channels(name)]
REFUSED = [(name, channel) for name in sorted(PROVIDERS) for channel in ROUTABLE if channel not in _channels(name)]


@pytest.fixture
def adapter(request, practice):
    """The provider named by the test's parameter, its fake started and the practice pointed at it."""
    cls = ADAPTERS[request.param]
    fake = request.getfixturevalue(cls.fixture) if cls.fixture else None
    practice.refresh_from_db()  # the fake's fixture configured the stored practice
    return cls(practice, fake)


def _outbound(adapter, channel, *, body=BODY, subject=SUBJECT, html=HTML, headers=None, to=None):
    """What the worker hands a provider for this channel (the practice's sender, as the worker renders it)."""
    practice = adapter.practice
    common = {
        "practice_id": str(practice.pk),
        "delivery_id": next(_delivery_ids),
        "channel": channel,
        "to": to or adapter.address(channel),
        "body": body,
    }
    if channel == "email":
        return Outbound(
            **common,
            sender=f"{practice.name} <noreply@localhost>",
            subject=subject,
            html=html,
            headers=headers or {},
            category="document_shared",
        )
    if channel == "in_app":
        return Outbound(**common, sender=practice.name, subject=subject, category="message_received")
    return Outbound(**common, sender=practice.texting_number, category="document_shared")


def _send(adapter, outbound) -> tuple[SendResult, Arrived]:
    before = len(adapter.arrived())
    result = provider_for(adapter.practice, outbound.channel).send(outbound)
    arrivals = adapter.arrived()
    assert len(arrivals) == before + 1, "exactly one message reaches the far end"
    return result, arrivals[-1]


def _carried(outbound: Outbound, arrived: Arrived) -> None:
    """What arrived is the outbound: to its recipient, from the practice's sender, with its content."""
    assert set(arrived.to) == {outbound.to}
    assert arrived.sender == _sender(outbound.channel, outbound.sender)
    if outbound.channel == "voice":
        assert outbound.body in arrived.body  # the call says who is calling first
    else:
        assert arrived.body == outbound.body
    assert arrived.subject == outbound.subject
    assert arrived.html == outbound.html


# --- the suite covers every provider ---------------------------------------------------------------------------


def test_the_suite_covers_every_provider():
    assert set(ADAPTERS) == set(PROVIDERS)
    assert {name for name, _ in CARRIED} == set(PROVIDERS)
    # Each provider is either remote (its refusals are tested) or local, never both.
    assert set(REMOTE) | set(LOCAL) == set(PROVIDERS) and not set(REMOTE) & set(LOCAL)
    assert {name for name, adapter in ADAPTERS.items() if issubclass(adapter, RemoteAdapter)} == set(REMOTE)
    for name in PROVIDERS:
        assert _provider_class(name).name == name
        assert ADAPTERS[name].primary in _provider_class(name).channels


# --- 1. building and sending -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "channel"), CARRIED, indirect=["adapter"])
def test_send_returns_a_reference_the_delivery_can_store(adapter, channel):
    provider = provider_for(adapter.practice, channel)
    assert isinstance(provider, _provider_class(adapter.name))

    first, arrived = _send(adapter, _outbound(adapter, channel))
    second, _ = _send(adapter, _outbound(adapter, channel))

    for result in (first, second):
        assert isinstance(result, SendResult)
        assert 0 < len(result.provider_ref) <= Delivery._meta.get_field("provider_ref").max_length
        assert result.status in ("sent", "delivered")
    assert first.provider_ref != second.provider_ref
    assert first.provider_ref == arrived.ref  # the far end knows the message by the same id


# --- 2. what arrives -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "channel"), CARRIED, indirect=["adapter"])
def test_what_arrives_is_addressed_from_the_practice_and_carries_the_content(adapter, channel):
    outbound = _outbound(adapter, channel)
    _, arrived = _send(adapter, outbound)
    _carried(outbound, arrived)


EMAIL_PROVIDERS = [name for name in sorted(PROVIDERS) if "email" in _channels(name)]


@pytest.mark.parametrize("adapter", EMAIL_PROVIDERS, indirect=True)
def test_an_emails_extra_headers_arrive(adapter):
    outbound = _outbound(adapter, "email", headers=UNSUBSCRIBE)
    _, arrived = _send(adapter, outbound)
    _carried(outbound, arrived)
    assert {name: arrived.headers.get(name) for name in UNSUBSCRIBE} == UNSUBSCRIBE


# --- 3. Unicode ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "channel"), CARRIED, indirect=["adapter"])
def test_unicode_and_emoji_arrive_intact(adapter, channel):
    outbound = _outbound(adapter, channel, body=UNICODE_BODY, subject=UNICODE_SUBJECT, html=UNICODE_HTML)
    _, arrived = _send(adapter, outbound)
    _carried(outbound, arrived)


# --- 4. channels a provider cannot carry ----------------------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "channel"), REFUSED, indirect=["adapter"])
def test_a_channel_the_provider_cannot_carry_is_refused(adapter, channel):
    # The practice routes this channel to the provider (a misconfiguration the worker must report clearly).
    adapter.practice.sms_provider = adapter.practice.email_provider = adapter.name
    with pytest.raises(ProviderError) as refused:
        provider_for(adapter.practice, channel)
    assert refused.value.code == "provider_channel_unsupported"
    assert adapter.arrived() == []


def test_in_app_always_goes_to_the_portal_whatever_the_practice_chose(practice):
    for name in PROVIDERS:
        practice.sms_provider = practice.email_provider = name
        assert isinstance(provider_for(practice, "in_app"), _provider_class("in_app"))


# --- 5. failures (remote providers only; sandbox and in_app write to this database: see LOCAL) ------------------------


@pytest.mark.parametrize("adapter", REMOTE, indirect=True)
def test_an_unreachable_remote_is_a_transient_error(adapter, settings):
    code = adapter.make_unreachable(settings)  # connection refused: nothing listens on the port
    outbound = _outbound(adapter, adapter.primary)
    with pytest.raises(ProviderError) as unreachable:
        provider_for(adapter.practice, adapter.primary).send(outbound)
    assert (unreachable.value.code, unreachable.value.transient) == (code, True)


@pytest.mark.parametrize(
    ("adapter", "status", "transient"),
    REMOTE_REFUSALS,
    indirect=["adapter"],
    ids=[f"{name}-{status}" for name, status, _ in REMOTE_REFUSALS],
)
def test_a_refusal_says_whether_trying_again_may_work(adapter, status, transient):
    outbound = _outbound(adapter, adapter.primary)
    code, words = adapter.refuse(outbound.to, status)
    with pytest.raises(ProviderError) as refused:
        provider_for(adapter.practice, adapter.primary).send(outbound)
    assert refused.value.code == code and refused.value.code
    assert refused.value.transient is transient
    assert words in str(refused.value)  # the remote's own explanation, for the delivery's error
    assert adapter.arrived() == []


# --- 6. end to end through the worker ---------------------------------------------------------------------------

PLANS = {
    "sms": {"kind": "manual", "category": "document_shared", "content": {"sms": BODY}},
    "email": {
        "kind": "manual",
        "category": "document_shared",
        "content": {"email": {"subject": SUBJECT, "text": BODY, "html": HTML}},
    },
    "in_app": {"kind": "notification", "category": "message_received", "content": {"in_app": BODY}},
}


@pytest.mark.parametrize("adapter", sorted(PROVIDERS), indirect=True)
def test_a_planned_message_goes_through_the_worker_and_keeps_the_providers_reference(adapter):
    channel = adapter.primary
    create_message(practice=adapter.practice, patient_ids=[adapter.patient.pk], **PLANS[channel])
    drain_worker()

    delivery = Delivery.objects.get(channel=channel)
    [arrived] = adapter.arrived()
    assert delivery.status in ("sent", "delivered")
    assert delivery.provider_ref == arrived.ref
    assert set(arrived.to) == {delivery.address or str(delivery.patient_id)}
    assert BODY in arrived.body
