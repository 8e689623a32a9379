"""Signed tokens in email links: unsubscribe (bound to practice and address) and resubscribe.

Tokens are signed with Django's ``signing`` (HMAC with SECRET_KEY; rotate with
SECRET_KEY_FALLBACKS) and carry everything the link needs, so a link works
without a lookup table and cannot be forged or pointed at another address.
Each kind of token has its own salt: a resubscribe token is no unsubscribe
token, and the other way round.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from django.core import signing

UNSUBSCRIBE_SALT = "consentry.email.unsubscribe"
RESUBSCRIBE_SALT = "consentry.email.resubscribe"
RESUBSCRIBE_MAX_AGE = timedelta(days=7)


class BadToken(Exception):
    """The token was altered, is of another kind, or has expired."""


def unsubscribe_token(practice_id, email: str) -> str:
    return signing.dumps([str(practice_id), email], salt=UNSUBSCRIBE_SALT, compress=True)


def read_unsubscribe_token(token: str) -> tuple[str, str]:
    """(practice id, email) from an unsubscribe token; ``BadToken`` if it is not one of ours."""
    return _pair(token, UNSUBSCRIBE_SALT, None)


def resubscribe_token(request_id: int, email: str) -> str:
    return signing.dumps([request_id, email], salt=RESUBSCRIBE_SALT, compress=True)


def read_resubscribe_token(token: str) -> tuple[int, str]:
    """(resubscribe request id, email); ``BadToken`` when altered or older than seven days."""
    return _pair(token, RESUBSCRIBE_SALT, RESUBSCRIBE_MAX_AGE)


def _pair(token: str, salt: str, max_age):
    if not isinstance(token, str) or not token or len(token) > 2000:
        raise BadToken("no token")
    try:
        value = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise BadToken("this link has expired") from exc
    except signing.BadSignature as exc:
        raise BadToken("this link is not valid") from exc
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)):
        raise BadToken("this link is not valid")
    return value[0], value[1]


def public_url(path: str) -> str:
    """An absolute URL of this service, as people's mail clients reach it."""
    base = settings.CONSENTRY_PUBLIC_URL or "http://127.0.0.1:8000"
    return base + path


def unsubscribe_url(practice_id, email: str) -> str:
    return public_url(f"/email/unsubscribe/{unsubscribe_token(practice_id, email)}")


def unsubscribe_mailto(practice_id, email: str) -> str:
    """mailto: that unsubscribes when mail arrives there; the token rides in the subject."""
    subject = quote(f"unsubscribe {unsubscribe_token(practice_id, email)}")
    return f"mailto:{settings.CONSENTRY_UNSUBSCRIBE_MAILBOX}?subject={subject}"


def token_from_mail_subject(subject: str) -> str:
    """The token in a mail sent to the unsubscribe mailbox ("unsubscribe <token>", maybe with "Re:" etc.)."""
    words = (subject or "").split()
    for i, word in enumerate(words):
        if word.lower() == "unsubscribe" and i + 1 < len(words):
            return words[i + 1]
    return ""
