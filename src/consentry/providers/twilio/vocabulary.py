"""Twilio's words, in ours."""

from __future__ import annotations

from consentry.vocabulary import Status

# Error 21610: the recipient replied STOP to this sender and the carrier holds the opt-out: we must
# record it (only the person can opt back in), whether Twilio refuses a send with it or reports it later.
CARRIER_OPT_OUT = "21610"

# Twilio's message and call statuses.
STATUSES: dict[str, Status] = {
    "accepted": Status.SENT,
    "scheduled": Status.SENT,
    "queued": Status.SENT,
    "sending": Status.SENT,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
    # calls
    "initiated": Status.SENT,
    "ringing": Status.SENT,
    "in-progress": Status.SENT,
    "completed": Status.DELIVERED,
    "busy": Status.UNDELIVERED,
    "no-answer": Status.UNDELIVERED,
}
