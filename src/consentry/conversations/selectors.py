"""Reads of conversations for people to look at."""

from __future__ import annotations

from consentry.patients.models import Practice

from .models import Conversation, Flag


def flagged_count(practice: Practice) -> int:
    """Conversations whose last reply may ask to stop, waiting for staff to confirm or clear."""
    return Conversation.objects.filter(practice=practice, flag=Flag.POSSIBLE_OPT_OUT).count()
