"""Tokens in email links: unsubscribe (bound to practice and address) and resubscribe.

A token is the link's whole state, encrypted and authenticated with the
service's encryption keys (Fernet: AES with an HMAC), so a link needs no lookup
table, cannot be forged or pointed at another address, and does not show the
address or the practice to whoever reads the URL (mail logs, link scanners).
Old links keep working after a key rotation: every configured key decrypts.
Each kind of token is tagged: a resubscribe token is no unsubscribe token.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from cryptography.fernet import InvalidToken
from django.conf import settings

from consentry.crypto import fernet

from .rules import PracticeId

UNSUBSCRIBE = "unsubscribe"
RESUBSCRIBE = "resubscribe"
PORTAL = "portal"
RESUBSCRIBE_MAX_AGE = timedelta(days=7)
PORTAL_MAX_AGE = timedelta(days=7)
MAX_TOKEN_CHARS = 2000


class BadToken(Exception):
    """The token was altered, is of another kind, or has expired."""


def _seal(kind: str, ref: str | int, email: str, issued_at: datetime | None = None) -> str:
    data = json.dumps([kind, ref, email]).encode()
    if issued_at is not None:  # an older link, for tests of expiry
        return fernet().encrypt_at_time(data, int(issued_at.timestamp())).decode()
    return fernet().encrypt(data).decode()


def _open(token: str, kind: str, max_age: timedelta | None) -> tuple[Any, str]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise BadToken("this link is not valid")
    ttl = int(max_age.total_seconds()) if max_age else None
    try:
        value = json.loads(fernet().decrypt(token.encode(), ttl=ttl))
    except (InvalidToken, ValueError, UnicodeError) as exc:
        # Fernet does not say whether a token is forged or merely old; tell
        # the person the likelier story for a link they were sent.
        raise BadToken("this link is not valid or has expired") from exc
    if not (isinstance(value, list) and len(value) == 3 and value[0] == kind and isinstance(value[2], str)):
        raise BadToken("this link is not valid")
    ref, email = value[1], value[2]
    return ref, email


def unsubscribe_token(practice_id: PracticeId, email: str) -> str:
    return _seal(UNSUBSCRIBE, str(practice_id), email)


def read_unsubscribe_token(token: str) -> tuple[str, str]:
    """(practice id, email) from an unsubscribe token; ``BadToken`` if it is not one of ours."""
    return _open(token, UNSUBSCRIBE, None)


def resubscribe_token(request_id: int, email: str, issued_at: datetime | None = None) -> str:
    return _seal(RESUBSCRIBE, request_id, email, issued_at)


def read_resubscribe_token(token: str) -> tuple[int, str]:
    """(resubscribe request id, email); ``BadToken`` when altered or older than seven days."""
    return _open(token, RESUBSCRIBE, RESUBSCRIBE_MAX_AGE)


def portal_token(patient_id: uuid.UUID | str, issued_at: datetime | None = None) -> str:
    return _seal(PORTAL, str(patient_id), "", issued_at)


def read_portal_token(token: str) -> str:
    """The patient id of a portal link; ``BadToken`` when altered, older than seven days, or naming no patient id."""
    patient_id = _open(token, PORTAL, PORTAL_MAX_AGE)[0]
    try:
        return str(uuid.UUID(str(patient_id)))
    except ValueError:
        raise BadToken("this link does not name a patient") from None


def public_url(path: str) -> str:
    """An absolute URL of this service, as people's mail clients reach it."""
    base = settings.CONSENTRY_PUBLIC_URL or "http://127.0.0.1:8000"
    return base + path


def unsubscribe_url(practice_id: PracticeId, email: str) -> str:
    return public_url(f"/email/unsubscribe/{unsubscribe_token(practice_id, email)}")


def unsubscribe_mailto(practice_id: PracticeId, email: str) -> str:
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
