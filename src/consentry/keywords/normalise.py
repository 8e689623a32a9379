"""One spelling for the many ways a reply is typed, before anything reads it.

normalise() is what the opt-out rules and the model both see:

- Unicode compatibility forms and accents are folded ("𝐒𝐓𝐎𝐏" -> "stop",
  "bórrenme" -> "borrenme"), case is folded, apostrophes are dropped
  ("Don’t" -> "dont");
- a stop sign (🛑, ⛔, 🚫) becomes the word "stop"; other emoji and symbols go;
- letters typed one by one are joined when there are three or more of them
  ("s t o p", "S.T.O.P", "s-t-o-p" -> "stop");
- a letter typed three times or more is typed once ("stoooop" -> "stop",
  "pleeease" -> "please"), and so is repeated punctuation ("!!!" -> "!");
- a small table of shorthand and misspellings is spelled out ("pls" ->
  "please", "txts" -> "texts", "msjs" -> "mensajes", "porfa" -> "por favor").

Sentence punctuation (. , ; : ! ? and newlines) is kept: the rules read
clauses. Every step is a precompiled pattern or a table look-up, so the cost
is linear in the length of the text.
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`\u00b4]")
_STOP_SIGNS = re.compile("[\U0001f6d1\u26d4\U0001f6ab]\ufe0f?")
# Letters typed one at a time: three or more single letters with separators between them.
_LETTER = r"[^\W\d_]"
_SPELLED = re.compile(rf"(?<![^\W_]){_LETTER}(?:[ .\-_*·]{{1,3}}{_LETTER}(?![^\W_])){{2,}}")
_NOT_LETTER = re.compile(r"[^\w]|_")
_DIGIT_O = re.compile(r"(?<=[a-z])0(?=[a-z])")
_REPEATED_LETTER = re.compile(rf"({_LETTER})\1{{2,}}")
_REPEATED_MARK = re.compile(r"([.,;:!?])[.,;:!?]*")
_BRACKETS = re.compile(r"[()\[\]{}]")
_AMPERSAND = re.compile(r"&")
# What is neither a word character, whitespace nor sentence punctuation; "#" stays ("wrong #").
_OTHER = re.compile(r"[^\w\s.,;:!?#]|_")
_SPACE = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")

# Shorthand and misspellings seen in replies, each spelled the way the rules expect.
SPELLINGS: dict[str, str] = {
    # English: the request itself
    "stpo": "stop",
    "sotp": "stop",
    "stopp": "stop",
    "stopit": "stop it",
    "optout": "opt out",
    "unsubscibe": "unsubscribe",
    "unsuscribe": "unsubscribe",
    "unsubcribe": "unsubscribe",
    "unsubscrib": "unsubscribe",
    "unsusbcribe": "unsubscribe",
    "unsbscribe": "unsubscribe",
    "unsubsribe": "unsubscribe",
    "unsubscribee": "unsubscribe",
    "unscribe": "unsubscribe",
    "remov": "remove",
    "remvoe": "remove",
    "reomve": "remove",
    "dont": "dont",
    "dnt": "dont",
    "don": "dont",
    "nomore": "no more",
    "anymor": "anymore",
    "anymoe": "anymore",
    "annymore": "anymore",
    # English: what is stopped
    "txt": "text",
    "txts": "texts",
    "tx": "text",
    "texs": "texts",
    "textes": "texts",
    "textx": "texts",
    "tex": "text",
    "txting": "texting",
    "textng": "texting",
    "texing": "texting",
    "textin": "texting",
    "txtin": "texting",
    "msg": "message",
    "msgs": "messages",
    "mesage": "message",
    "mesages": "messages",
    "messege": "message",
    "messeges": "messages",
    "messges": "messages",
    "messags": "messages",
    "massages": "messages",
    "msging": "messaging",
    "messageing": "messaging",
    "remider": "reminder",
    "remiders": "reminders",
    "reminer": "reminder",
    "reminers": "reminders",
    "remindrs": "reminders",
    "notifs": "notifications",
    # English: politeness and pronouns
    "pls": "please",
    "plz": "please",
    "plez": "please",
    "plse": "please",
    "pleas": "please",
    "pleae": "please",
    "pleasee": "please",
    "plss": "please",
    "u": "you",
    "ur": "your",
    "yu": "you",
    "thx": "thanks",
    "thnx": "thanks",
    "ty": "thank you",
    # Spanish
    "msj": "mensaje",
    "msjs": "mensajes",
    "mjs": "mensajes",
    "mensages": "mensajes",
    "mensage": "mensaje",
    "mesajes": "mensajes",
    "mensjes": "mensajes",
    "menajes": "mensajes",
    "porfa": "por favor",
    "porfavor": "por favor",
    "porfis": "por favor",
    "xfa": "por favor",
    "xfavor": "por favor",
    "plis": "por favor",
    "q": "que",
    "kiero": "quiero",
    "qiero": "quiero",
    "kieren": "quieren",
    "enbien": "envien",
    "embien": "envien",
    "escrivan": "escriban",
    "escrivir": "escribir",
    "escrivirme": "escribirme",
    "yamen": "llamen",
    "yamar": "llamar",
    "yamarme": "llamarme",
    "vorren": "borren",
    "vorrar": "borrar",
    "tmb": "tambien",
}


def _spell_out(match: re.Match[str]) -> str:
    return _NOT_LETTER.sub("", match.group(0))


_MISSPELT = re.compile(r"\b(?:" + "|".join(sorted(SPELLINGS, key=len, reverse=True)) + r")\b")


def _respell(match: re.Match[str]) -> str:
    return SPELLINGS[match.group(0)]


def normalise(body: str) -> str:
    """The reply as the classifier reads it: folded, joined, squeezed and spelled out."""
    text = body or ""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold()
    text = _APOSTROPHES.sub("", text)
    text = _STOP_SIGNS.sub(" stop ", text)
    text = _SPELLED.sub(_spell_out, text)
    text = _DIGIT_O.sub("o", text)
    text = _REPEATED_LETTER.sub(r"\1", text)
    text = _BRACKETS.sub(",", text)
    text = _AMPERSAND.sub(" and ", text)
    text = _OTHER.sub(" ", text)
    text = _REPEATED_MARK.sub(r"\1", text)
    text = _MISSPELT.sub(_respell, text)
    return _NEWLINES.sub("\n", _SPACE.sub(" ", text)).strip()
