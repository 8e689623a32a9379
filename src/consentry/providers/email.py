"""Email through Django's email framework: an SMTP server ("smtp") or an ESP's API through django-anymail ("anymail").

Both build one ``EmailMultiAlternatives`` (the plain-text body, plus an HTML
alternative when there is one) and hand it to a Django email connection
configured here from the ``CONSENTRY_SMTP_*`` / ``CONSENTRY_ANYMAIL_BACKEND``
settings, so the deployment's ``EMAIL_BACKEND`` plays no part.

Errors become ``ProviderError``s the worker understands:

- the server or the API could not be reached, timed out before it had the
  message, or answered 4xx (SMTP) / 429 or 5xx (HTTP): ``transient=True``;
- it refused the message for good (SMTP 5xx, HTTP 4xx): ``transient=False``;
  when the SMTP server refused the recipient's address itself (550 5.1.1 user
  unknown), the error carries ``bounce`` and the address is recorded as bounced;
- the connection broke after the message was handed over (SMTP after DATA,
  an HTTP read timeout): ``outcome_unknown``, never resent.

One module, a little longer than most: the two transports share the message they build and the
mapping of their errors, which is the part worth reading side by side.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import uuid
from email.utils import formataddr

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend

from .base import Outbound, ProviderError, SendResult

log = logging.getLogger("consentry.providers.email")

# Delivery.provider_ref holds at most this many characters.
PROVIDER_REF_MAX = 64
# Replies and exception texts kept in a ProviderError (the delivery's error column is short).
MESSAGE_MAX = 300

_NAME_ADDR = re.compile(r"^\s*(?P<name>.*?)\s*<(?P<addr>[^<>\s]+)>\s*$")


def _sender(sender: str) -> str:
    """``Name <addr>`` with the name quoted or encoded as needed.

    The sender is the practice's name and address; a name such as
    ``Smith, Jones & Co`` would otherwise read as two addresses.
    """
    match = _NAME_ADDR.match(sender)
    if not match:
        return sender.strip()
    name = match["name"].strip().strip('"').strip()
    return formataddr((name, match["addr"])) if name else match["addr"]


def build_email(message: Outbound, *, connection) -> EmailMultiAlternatives:
    # A line break in a subject is a header injection to Django: keep the words, drop the breaks.
    subject = " ".join(message.subject.split())
    email = EmailMultiAlternatives(
        subject=subject,
        body=message.body,
        from_email=_sender(message.sender),
        to=[message.to],
        connection=connection,
    )
    if message.html:
        email.attach_alternative(message.html, "text/html")
    email.extra_headers.update(message.headers)
    return email


def _short(text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


def _provider_ref(ref: str) -> str:
    if len(ref) > PROVIDER_REF_MAX:
        log.warning("provider id %r is longer than %d characters; stored cut short", ref, PROVIDER_REF_MAX)
        return ref[:PROVIDER_REF_MAX]
    return ref


# --- SMTP ------------------------------------------------------------------------------------------------------


class _TracksHandOver:
    """Remembers whether DATA began: from then on the server may have taken the message."""

    handed_over = False

    def data(self, msg):
        self.handed_over = True
        return super().data(msg)


class _SMTP(_TracksHandOver, smtplib.SMTP):
    pass


class _SMTP_SSL(_TracksHandOver, smtplib.SMTP_SSL):  # noqa: N801 (smtplib's naming)
    pass


class SMTPBackend(DjangoSMTPBackend):
    """Django's SMTP backend, on connections that tell a refusal from a lost answer."""

    @property
    def connection_class(self):
        return _SMTP_SSL if self.use_ssl else _SMTP


def message_id(domain: str) -> str:
    """A fresh ``Message-ID`` that fits in ``Delivery.provider_ref``."""
    room = PROVIDER_REF_MAX - len(domain) - 3  # "<", "@", ">"
    if room < 20:
        raise ProviderError(
            f"CONSENTRY_EMAIL_MESSAGE_ID_DOMAIN {domain!r} is too long (at most {PROVIDER_REF_MAX - 23} characters)",
            code="smtp_not_configured",
        )
    return f"<{uuid.uuid4().hex[:room]}@{domain}>"


def _smtp_reply_error(code: int, text, *, handed_over: bool) -> ProviderError:
    detail = _short(f"{code} {_short(text)}")
    if 400 <= code < 500:
        return ProviderError(detail, code="smtp_4xx", transient=True)
    if 500 <= code < 600:
        return ProviderError(detail, code="smtp_5xx", transient=False)
    if handed_over:
        return ProviderError(detail, code="outcome_unknown")
    return ProviderError(detail, code="smtp_protocol", transient=True)


# An enhanced status code (RFC 3463) at the start of a reply: "5.1.1", "5.7.1".
_ENHANCED_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.\d{1,3}\b")
# What servers that give no enhanced code say when a mailbox does not exist.
_NO_SUCH_MAILBOX = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient|address)|unknown (recipient|mailbox)"
    r"|(mailbox|account|address|user) (does not|doesn't) exist|mailbox not found|unrouteable address"
    r"|invalid (recipient|mailbox)",
    re.IGNORECASE,
)


def address_refused_for_good(code: int, text) -> bool:
    """Whether a refusal of ``RCPT TO`` says the address itself is bad (a hard bounce).

    Only a permanent (5xx) refusal can be. An enhanced status code decides when
    there is one: 5.1.x is about the address (no such mailbox, no such domain,
    bad syntax); anything else (5.7.1 relaying denied, a policy block) is about
    us, not about the address. Without one: 551 (user not local), or a reply
    that says the mailbox does not exist.
    """
    if not 500 <= code < 600:
        return False
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
    enhanced = _ENHANCED_STATUS.match(text)
    if enhanced:
        return enhanced[1] == "5" and enhanced[2] == "1"
    return code == 551 or bool(_NO_SUCH_MAILBOX.search(text))


def smtp_error(exc: Exception, *, handed_over: bool) -> ProviderError:
    """What a failed SMTP exchange means for the delivery."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # Every recipient refused (there is one): the server's reply to RCPT TO.
        code, text = next(iter(exc.recipients.values()), (-1, b"recipient refused"))
        error = _smtp_reply_error(code, text, handed_over=False)
        if address_refused_for_good(code, text):
            error.bounce = {"smtp_code": code, "smtp_reply": _short(text)}
        return error
    if isinstance(exc, smtplib.SMTPResponseException):
        # The server answered (greeting, HELO, AUTH, MAIL FROM, DATA): its code says it all.
        return _smtp_reply_error(exc.smtp_code, exc.smtp_error, handed_over=handed_over)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ProviderError(_short(exc), code="smtp_not_supported")  # e.g. no STARTTLS offered: configuration
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProviderError(_short(exc), code="smtp_tls")  # the server's certificate: configuration
    if isinstance(exc, smtplib.SMTPServerDisconnected) or (
        isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)
    ):
        # Refused, reset, timed out, or hung up without a reply.
        detail = _short(exc) or type(exc).__name__
        if handed_over:
            return ProviderError(detail, code="outcome_unknown")
        return ProviderError(detail, code="smtp_unreachable", transient=True)
    return ProviderError(_short(exc), code="smtp_error")  # e.g. no AUTH method in common: configuration


class EmailProvider:
    """Email to an SMTP server: ``CONSENTRY_SMTP_HOST``/``PORT``/``USER``/``PASSWORD``/``USE_TLS``/``USE_SSL``."""

    name = "smtp"
    channels = frozenset({"email"})
    backend = "consentry.providers.email.SMTPBackend"

    def __init__(self, practice=None) -> None:
        self.practice = practice
        try:
            self.connection = get_connection(
                self.backend,
                fail_silently=False,
                host=settings.CONSENTRY_SMTP_HOST,
                port=settings.CONSENTRY_SMTP_PORT,
                username=settings.CONSENTRY_SMTP_USER,
                password=settings.CONSENTRY_SMTP_PASSWORD,
                use_tls=settings.CONSENTRY_SMTP_USE_TLS,
                use_ssl=settings.CONSENTRY_SMTP_USE_SSL,
                timeout=settings.CONSENTRY_EMAIL_TIMEOUT,
            )
        except ValueError as exc:  # STARTTLS and implicit TLS both asked for
            raise ProviderError(str(exc), code="smtp_not_configured") from exc

    def send(self, message: Outbound) -> SendResult:
        email = build_email(message, connection=self.connection)
        msgid = message_id(settings.CONSENTRY_EMAIL_MESSAGE_ID_DOMAIN)
        email.extra_headers["Message-ID"] = msgid
        try:
            self.connection.open()
        except OSError as exc:  # smtplib's errors are OSErrors too
            self._close()
            raise smtp_error(exc, handed_over=False) from exc
        try:
            sent = self.connection.send_messages([email])
        except ValueError as exc:  # an address Django cannot write, checked before anything is sent
            raise ProviderError(_short(exc), code="email_invalid_address") from exc
        except OSError as exc:
            handed_over = getattr(self.connection.connection, "handed_over", False)
            raise smtp_error(exc, handed_over=handed_over) from exc
        finally:
            self._close()
        if not sent:
            raise ProviderError("the message has no recipient", code="email_invalid_address")
        return SendResult(provider_ref=_provider_ref(msgid), status="sent")

    def _close(self) -> None:
        # The server has the message (or refused it): a failing QUIT changes nothing.
        try:
            self.connection.close()
        except OSError as exc:
            log.info("SMTP QUIT failed: %s", exc)


# --- ESP APIs through django-anymail ----------------------------------------------------------------------------


class AnymailProvider:
    """Email through an ESP's API: the django-anymail backend ``CONSENTRY_ANYMAIL_BACKEND`` (SendGrid by default)."""

    name = "anymail"
    channels = frozenset({"email"})
    status_callbacks = True  # the ESP's tracking webhooks name the message by the id the send returned

    def __init__(self, practice=None) -> None:
        self.practice = practice
        try:
            self.connection = get_connection(
                settings.CONSENTRY_ANYMAIL_BACKEND,
                fail_silently=False,
                # Connecting gives up early (nothing was sent); waiting for the answer does not.
                timeout=(settings.CONSENTRY_EMAIL_TIMEOUT, settings.CONSENTRY_PROVIDER_TIMEOUT),
            )
        except (ImproperlyConfigured, ImportError) as exc:  # no API key, no such backend, ESP extra missing
            raise ProviderError(_short(exc), code="anymail_not_configured") from exc

    def send(self, message: Outbound) -> SendResult:
        from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused

        email = build_email(message, connection=self.connection)
        try:
            email.send()
        except AnymailAPIError as exc:
            raise self._api_error(exc) from exc
        except AnymailRecipientsRefused as exc:
            raise ProviderError(_short(exc), code="anymail_rejected") from exc
        except (AnymailError, ValueError) as exc:  # an address or content the ESP cannot take
            raise ProviderError(_short(exc), code="anymail_invalid") from exc
        ref = email.anymail_status.message_id  # type: ignore[attr-defined]  # set by django-anymail's backend
        if not isinstance(ref, str):  # None, or a set when recipients got different ids (there is one)
            ref = ",".join(sorted(ref)) if ref else ""
        return SendResult(provider_ref=_provider_ref(ref), status="sent")

    @staticmethod
    def _api_error(exc) -> ProviderError:
        status = exc.status_code
        detail = _short(exc)
        if status is None:
            # No HTTP answer: anymail's error is also the requests exception it came from.
            if isinstance(exc, requests.ConnectTimeout) or (
                isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout)
            ):
                return ProviderError(detail, code="anymail_unreachable", transient=True)
            if isinstance(exc, requests.Timeout):
                # The ESP may have taken it: never resend blindly.
                return ProviderError(detail, code="outcome_unknown")
            return ProviderError(detail, code="anymail_error")
        transient = status == 429 or status >= 500
        return ProviderError(detail or f"HTTP {status}", code=f"anymail_{status}", transient=transient)
