"""Inbound SMS keywords: a whole-message match, nothing fuzzy.

Case does not matter, and neither do surrounding whitespace and punctuation
("stop", " Stop. ", "STOP!!!"). "stop texting me" is not a keyword: CTIA's
standard keywords are matched as the entire message.

English is always on. A practice may also enable Spanish, whose keywords are
matched the same way with accents optional ("NO MÁS" and "no mas" alike).
Carriers and Twilio only handle the English list by default (Twilio's
Advanced Opt-Out lets a practice add its own words per language but ships no
Spanish list), so the Spanish sets below are the product's own choice:

- opt-out: PARAR, ALTO, DETENER, CANCELAR, BAJA, NO MAS — the imperatives and
  phrases Spanish-speaking US patients actually send, mirroring STOP, END,
  CANCEL and UNSUBSCRIBE;
- opt-in: COMENZAR, INICIAR (START) and SI/SÍ, which mirrors YES: it is an
  opt-in keyword in English, only the person can send it from the phone, and
  an opted-out number gets nothing that would prompt a stray "sí";
- help: AYUDA (INFO is already English and matches in every language).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from enum import StrEnum


class KeywordKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    NONE = "none"


LANGUAGES = ("en", "es")

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})

# Spanish, written without accents: the message is folded the same way first.
OPT_OUT_ES = frozenset({"PARAR", "ALTO", "DETENER", "CANCELAR", "BAJA", "NO MAS"})
OPT_IN_ES = frozenset({"COMENZAR", "INICIAR", "SI"})
HELP_ES = frozenset({"AYUDA"})

_SETS = {
    "en": ((KeywordKind.OPT_OUT, OPT_OUT), (KeywordKind.OPT_IN, OPT_IN), (KeywordKind.HELP, HELP)),
    "es": ((KeywordKind.OPT_OUT, OPT_OUT_ES), (KeywordKind.OPT_IN, OPT_IN_ES), (KeywordKind.HELP, HELP_ES)),
}

_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalize(body: str) -> str:
    return _SPACES.sub(" ", _EDGES.sub("", body or "")).upper()


def fold_accents(text: str) -> str:
    """Drop diacritics: "MÁS" -> "MAS", "SÍ" -> "SI", "Ñ" -> "N"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def enabled_languages(languages: Iterable[str]) -> tuple[str, ...]:
    """The supported languages among `languages`, English always first.

    Codes are read by their primary subtag, so "es-MX" and "ES" mean Spanish;
    codes the product has no keywords for are left out.
    """
    if isinstance(languages, str):
        languages = (languages,)
    wanted = {re.split(r"[-_]", str(code).strip(), maxsplit=1)[0].lower() for code in languages or ()}
    return tuple(lang for lang in LANGUAGES if lang == "en" or lang in wanted)


def _lookup(word: str, lang: str) -> KeywordKind:
    for kind, words in _SETS[lang]:
        if word in words:
            return kind
    return KeywordKind.NONE


def classify(body: str) -> KeywordKind:
    """The English keyword the whole message is, or NONE."""
    return _lookup(normalize(body), "en")


def classify_in(body: str, languages: Iterable[str]) -> tuple[KeywordKind, str]:
    """The keyword the whole message is in any enabled language, and that language.

    English is always enabled and matched exactly as classify() does; other
    languages ignore accents. Returns (NONE, "") when nothing matches.
    """
    word = normalize(body)
    for lang in enabled_languages(languages):
        kind = _lookup(word if lang == "en" else fold_accents(word), lang)
        if kind != KeywordKind.NONE:
            return kind, lang
    return KeywordKind.NONE, ""
