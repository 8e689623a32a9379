"""What a message may say: content checked per channel before anything is planned."""

from __future__ import annotations

from consentry.errors import InvalidInput
from consentry.vocabulary import Channel, Kind

from . import templating

MAX_SMS_CHARS = templating.MAX_SMS_CHARS
MAX_TEXT_CHARS = 100_000


def clean_content(  # noqa: C901 (one check after another, each naming its field)
    kind: Kind, content: dict, *, sms_prefix: str = "", sms_suffix: str = ""
) -> tuple[dict, frozenset[Channel]]:
    """Validate the content and return it with the channels it can be sent on.

    ``sms_prefix`` is what every text starts with (the practice's name), ``sms_suffix`` what a text may
    end with (how to opt out, see ``hints``): both count towards a text's length.
    """
    if not isinstance(content, dict):
        raise InvalidInput("content", "must be an object with sms, voice and/or email")
    cleaned: dict = {}
    for key in ("sms", "voice", "in_app"):
        value = content.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"content.{key}", "must be text")
        if value.strip():
            limit = MAX_SMS_CHARS - len(sms_prefix) - len(sms_suffix) if key == "sms" else MAX_TEXT_CHARS
            if len(value) > limit:
                why = _sms_why(sms_prefix, sms_suffix) if key == "sms" else ""
                raise InvalidInput(f"content.{key}", f"is longer than {limit} characters{why}")
            templating.check(value, f"content.{key}")
            cleaned[key] = value
    email = content.get("email")
    if email is not None:
        if not isinstance(email, dict):
            raise InvalidInput("content.email", "must be an object with subject, text and html")
        subject, text, html = (email.get(k) or "" for k in ("subject", "text", "html"))
        if not all(isinstance(v, str) for v in (subject, text, html)):
            raise InvalidInput("content.email", "subject, text and html must be text")
        if text.strip() or html.strip():
            if not subject.strip():
                raise InvalidInput("content.email.subject", "an email needs a subject")
            if max(len(subject), len(text), len(html)) > MAX_TEXT_CHARS:
                raise InvalidInput("content.email", f"is longer than {MAX_TEXT_CHARS} characters")
            templating.check(subject, "content.email.subject")
            templating.check(text, "content.email.text")
            templating.check(html, "content.email.html")
            cleaned["email"] = {"subject": subject, "text": text, "html": html}
    unknown = set(content) - {"sms", "voice", "email", "in_app"}
    if unknown:
        raise InvalidInput("content", f"unknown channel(s): {', '.join(sorted(unknown))}")
    if not cleaned:
        raise InvalidInput("content", "no content for any channel: write sms, voice or email content")
    if "in_app" in cleaned and kind != Kind.NOTIFICATION:
        raise InvalidInput("content.in_app", "in-app content is only for notifications")
    channels = {Channel(k) for k in cleaned}
    if kind == Kind.NOTIFICATION and cleaned.keys() - {"voice"}:
        # The portal shows a notification's own in-app text, else its text or email.
        channels.add(Channel.IN_APP)
    return cleaned, frozenset(channels)


def _sms_why(prefix: str, suffix: str) -> str:
    said = [f"start with {prefix!r}"] if prefix else []
    said += [f"may end with {suffix.strip()!r}"] if suffix else []
    return f" (texts {' and '.join(said)})" if said else ""
