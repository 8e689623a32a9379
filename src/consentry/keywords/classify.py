"""Inbound SMS keywords: a whole-message match, nothing fuzzy.

Case does not matter, and neither do surrounding whitespace and punctuation
("stop", " Stop. ", "STOP!!!"). "stop texting me" is not a keyword: CTIA's
standard keywords are matched as the entire message.
"""

from __future__ import annotations

import re
from enum import StrEnum


class KeywordKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    NONE = "none"


OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})

_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalize(body: str) -> str:
    return _SPACES.sub(" ", _EDGES.sub("", body or "")).upper()


def classify(body: str) -> KeywordKind:
    word = normalize(body)
    if word in OPT_OUT:
        return KeywordKind.OPT_OUT
    if word in OPT_IN:
        return KeywordKind.OPT_IN
    if word in HELP:
        return KeywordKind.HELP
    return KeywordKind.NONE
