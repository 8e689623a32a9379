"""Opt-out requests that are not keywords: consent revoked "by any reasonable means".

Since April 2025 US rules say a person may revoke consent to texts in any
reasonable way, so "please stop texting me" or "take me off your list" must
not be treated as an ordinary reply. assess() recognises such requests with
plain, named phrase rules and a small statistical model (model.py); the name
of the rule that fired ("model" when only the model did) is kept as
evidence, so staff and auditors can see why a reply was read as an opt-out.

How a reply is read:

1. It is normalised (normalise.py): lower case, accents and apostrophes
   dropped ("Don’t" -> "dont", "bórrenme" -> "borrenme"), letters typed one
   by one joined ("s t o p"), stretched letters squeezed ("stooop"),
   shorthand spelled out ("pls txt" -> "please text").
2. Guards remove sentences that talk about stopping without asking for it:
   negated requests ("please don't stop texting me"), a sender's own slip
   ("wrong person, meant to send that to my sister"), corrections of the
   record ("wrong number on my form"), unsubscribing by accident.
3. Opt-out rules run over what is left, in order; the first that matches
   decides. They pair an action (stop, quit, remove, don't want, no more,
   unsubscribe, opt out, dejen de, bórrenme, ...) with what is stopped: the
   texts themselves, "me", "this number", "your list". Words about
   appointments, medicines, symptoms or parking never complete a rule, which
   is what keeps "stop taking his meds" or "cancel my appointment" out.
4. A clause made only of a stop word and politeness ("stop pls", "STOP!!!",
   "🛑", "alto por favor", "remove", "enough") counts too.
5. The model gives the probability that the whole reply asks to stop.
   decide() combines the two: a rule's match, or a probability of at least
   FLAG_THRESHOLD in a reply no guard set aside, is a possible opt-out for
   staff (policy `flag`); it is `certain`, enough for policy `auto` to act
   alone, only when a rule matched and the model agrees (AUTO_AGREEMENT).

Every pattern is compiled once and has bounded repetition, and the model's
score is a sum over the reply's n-grams, so a call costs time linear in the
length of the text (about 0.1 ms for a usual reply) and can run on every
inbound message.
Exact keywords are classify()'s job; the caller checks them first.

Most of its length is the named rules themselves, each with the replies it
is for: one table, read as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .classify import enabled_languages
from .model import model
from .normalise import normalise


@dataclass(frozen=True)
class Assessment:
    # Staff should look at the reply (policy `flag`).
    possible_opt_out: bool
    # The name of the rule that decided ("model" when the model alone did; "" when nothing did, or the guard
    # that set a sentence aside), kept as evidence in the consent ledger.
    rule: str
    # Clear enough to act on without staff (policy `auto`): a named rule matched and the model agrees.
    certain: bool = False
    # The model's probability that the reply asks to stop.
    probability: float = field(default=0.0, compare=False)


# Thresholds on the model's probability, chosen by cross-validation on the development corpus only.
FLAG_THRESHOLD = 0.45  # the model alone flags a reply for staff from here on
AUTO_AGREEMENT = 0.5  # a rule's match is acted on without staff when the model gives at least this


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.VERBOSE)


# --- vocabulary (normalised text: lower case, no accents, no apostrophes) ----------------------------------------

# What is being stopped: the messages themselves.
_NOUN = (
    r"(?:text|txt|sms|mms|messag|mesag|msg|reminder|notification|notif|alert|spam|robotext|robocall|"
    r"communication|correspondence)\w*"
)
# Contact itself, but not contact lenses.
_CONTACT = r"contact\b(?!\s+lens)"
# Words that may stand between a verb and that noun: "these automated texts", "the refill reminders".
_NP = (
    r"(?:(?:all|any|the|these|those|this|that|your|ur|such|more|further|future|of|automated|automatic|my|"
    r"appointment|refill|reminder|promotional|marketing|text|txt|sms|stupid|damn|fucking|f|freaking)\s+){0,3}"
    rf"(?:{_NOUN}|{_CONTACT})"
)
# A demonstrative ending the clause: "stop sending these", "I don't want to get these anymore".
_THESE = (
    r"(?:these|those|them|this(?:\s+(?:stuff|crap|junk|garbage|nonsense|shit))?)"
    r"(?=\s*(?:anymore|any\s+more|again|$|[.,;!?)]|to\s+(?:me|us|this\s+(?:number|phone)|my\s+\w+)))"
)
# The sender's own texting ("can I stop texting you my readings") is not a request.
_NOT_TO_YOU = r"(?!\s+(?:you|u|ya|yall|your|ur|dr|the\s+(?:doctor|dr|nurse|office|clinic))\b)"
_STOP = r"(?:s+t+o+p+|sotp|stpo|stahp|quit|cease|discontinue)"
# Other verbs that stop the messages when the messages are their object: "end these texts", "drop the reminders".
_HALT = rf"(?:{_STOP}|end|halt|terminate|kill|nix|ditch|drop|cut\s+out|block|pause|suspend|disable|deactivate)"
# Swearing between "stop" and what is stopped: "stop the f*** texting".
_CURSE = r"(?:(?:all|the|f|fing|f\s+ing|fn|effing|freaking|frickin|fricking|fucking|damn|bloody)\s+){0,2}"
_OBJ = r"(?:me|us|him|her|them|this\s+(?:number|phone|cell)|my\s+\w+)"
_GERUND = (
    r"(?:texting|textin|texing|txting|txtin|messaging|msging|messageing|contacting|spamming|bothering|"
    r"harassing|bugging|pestering|calling|reminding|notifying|alerting)"
)

_ES_NOUN = r"(?:mensaje|mensajito|msj|texto|txt|sms|recordatorio|notificacion|aviso|alerta|text|message)\w*"
_ES_NP = (
    r"(?:(?:los|las|el|la|sus|tus|estos|estas|esos|esas|este|esta|mas|ningun|ninguna|tantos|tantas|de|"
    r"ese|tipo)\s+){0,3}" + _ES_NOUN
)
_ES_SEND = r"(?:escribir|mandar|enviar|textear|mensajear|llamar|molestar|contactar)\w*"
_ES_HALT = (
    r"(?:alto\s+a|paren(?:le)?(?:\s+con)?|pare|parar|detengan|detenga|detener|suspendan|suspenda|suspender|"
    r"terminen\s+con|termine\s+con|apaguen|apague|apagar|desactiven|desactive|desactivar|quiten|quite|"
    r"basta\s+(?:de|con)|ya\s+estuvo\s+(?:de|con))"
)


# --- guards: sentences that mention stopping without asking for it -----------------------------------------------

_GUARDS: tuple[tuple[str, re.Pattern[str], frozenset[str]], ...] = (
    (
        "negated_request",
        _c(r"""\b(?:dont|do\s+not|never|didnt|did\s+not)\s+
               (?:(?:want|mean|need)\s+(?:you\s+|u\s+)?to\s+)?
               (?:stop|cancel|remove|unsubscribe|unsub|opt\s*-?\s*out|quit|take\s+me\s+off)\b"""),
        frozenset({"en"}),
    ),
    (
        "unsubscribed_by_mistake",
        _c(r"""\b(?:did\s+i|didnt|did\s+not|never|accidentally)\s+(?:\w+\s+)?(?:unsub\w*|opt(?:ed)?\s*-?\s*out)\b
             | \b(?:unsub\w*|opted\s*-?\s*out)\s+(?:\w+\s+)?by\s+(?:accident|mistake)\b"""),
        frozenset({"en"}),
    ),
    (
        "own_mistake",
        _c(r"""\bmeant\s+(?:to\s+(?:send|text|write)|for)\b
             | \bsent\s+(?:this|that|it)\s+to\s+the\s+wrong\b
             | \bwrong\s+(?:chat|thread|conversation)\b"""),
        frozenset({"en"}),
    ),
    (
        "record_correction",
        _c(r"""\bwrong\s+(?:number|phone|\#)\s+(?:on|in|listed|for\s+(?:the|your|my|our))\b
             | \bmy\s+(?:old|previous|former)\s+(?:number|phone|cell)\b"""),
        frozenset({"en"}),
    ),
    (
        # Texts are still wanted: "stop calling me, just text", "texts are fine, unsubscribe me from the newsletter"
        "texts_still_wanted",
        _c(r"""\bjust\s+text\b|\btext\s+(?:me\s+)?instead\b|\btext\s+my\s+(?:cell|other|new|mobile)\b
             | \btext(?:ing|s)?\s+(?:is|are)\s+(?:better|fine|ok|okay|good|great)\b
             | \btext(?:s|ing)?\s+only\b|\bonly\s+(?:by\s+)?text
             | \b(?:prefer|rather)\s+(?:to\s+be\s+(?:contacted|reached)\s+)?(?:by\s+|over\s+|via\s+)?text"""),
        frozenset({"en"}),
    ),
    (
        # Messages are still wanted: "solo mensajes", "prefiero que me contacten por mensaje"
        "es_texts_still_wanted",
        _c(r"""\b(?:solo|solamente|nomas|mejor)\s+(?:por\s+)?(?:mensajes?|textos?)\b
             | \bprefiero\s+(?:que\s+me\s+\w+\s+)?(?:por\s+)?(?:mensajes?|textos?)\b"""),
        frozenset({"es"}),
    ),
    (
        "es_negated_request",
        _c(r"\bno\s+(?:dejen|deje|dejes|dejar|paren|pare|pares)\s+de\b"),
        frozenset({"es"}),
    ),
    (
        "es_record_correction",
        _c(r"""\bnumero\s+(?:equivocado|incorrecto)\s+(?:en|de)\s+(?:mi|el|la|su|los)\b
             | \b(?:mi|el)\s+(?:numero|telefono|celular)\s+(?:viejo|anterior|antiguo)\b"""),
        frozenset({"es"}),
    ),
)


# --- opt-out rules, first match decides --------------------------------------------------------------------------

_RULES: tuple[tuple[str, re.Pattern[str], frozenset[str]], ...] = (
    # "stop texting me", "quit texting me", "stop calling and texting me", "stop spamming me"
    ("stop_contacting", _c(rf"\b{_STOP}\s+{_CURSE}{_GERUND}\b{_NOT_TO_YOU}"), frozenset({"en"})),
    # "refrain from texting me"
    ("refrain", _c(rf"\brefrain\s+from\s+{_GERUND}\b{_NOT_TO_YOU}"), frozenset({"en"})),
    # "stop sending me texts", "quit sending me these", "stop getting these reminders"
    (
        "stop_sending",
        _c(rf"""\b{_STOP}\s+(?:sending|send|getting|receiving|get|receive)\b
                (?:\s+{_OBJ})?
                (?:\s+{_NP}|\s+{_THESE}|\s+(?:stuff|things|anything|crap|junk)\b|\s*(?:$|[.!?]))"""),
        frozenset({"en"}),
    ),
    # "stop messages", "stop the texts", "stop with the texts", "cease all text messages"
    ("stop_messages", _c(rf"\b{_HALT}\s+(?:it\s+)?(?:with\s+)?(?:all\s+)?{_NP}\b{_NOT_TO_YOU}"), frozenset({"en"})),
    # "stop these", "stop all of this", "block these"
    ("stop_these", _c(rf"\b(?:{_STOP}|end|halt|block)\s+(?:all\s+)?(?:of\s+)?{_THESE}"), frozenset({"en"})),
    # "I want these texts to stop", "make the texts stop"
    (
        "make_them_stop",
        _c(rf"\b(?:want|make|need|like|wish|have|get)\s+(?:{_NP}|these|them)\s+(?:to\s+)?(?:stop|end)\b"),
        frozenset({"en"}),
    ),
    # "turn off text reminders", "how do I turn these notifications off"
    (
        "turn_off",
        _c(rf"\b(?:turn|switch|shut)\s+(?:off\s+{_NP}|(?:{_NP}|these|them)\s+off\b)"),
        frozenset({"en"}),
    ),
    # "cancel my text reminders", "cancel all text notifications"
    ("cancel_messages", _c(rf"\bcancel\w*\s+{_NP}"), frozenset({"en"})),
    # "I said stop", "I told you to stop texting me", "how many times do I have to say stop"
    (
        "repeated_request",
        _c(
            r"\b(?:i\s+said|i\s+told\s+(?:you|u)|told\s+(?:you|u)\s+to|i\s+asked\s+(?:you|u)\s+to|how\s+many\s+times)"
            r"\b[^.!?]{0,40}?\bstop\b"
        ),
        frozenset({"en"}),
    ),
    # "unsubscribe me", "unsub", "unsuscribe", "I unsubscribed last week"
    # but not "unsubscribe me from the newsletter"
    (
        "unsubscribe",
        _c(r"""(?:\bun\s?-?\s?su(?:bs|b|s)c?r?i?b?(?:e|ed|es|ing)?\b|\bunsubscri\w+)\b
               (?!\s+(?:me\s+)?from\s+(?:the|your|ur|my|this)\s+(?:\w+\s+)?
                  (?:magazine|newsletter|emails?|mailing|paper|mail|letters?|catalog)\b)"""),
        frozenset({"en"}),
    ),
    # "opt me out", "OPT-OUT", "I'd like to opt out of text messages", but not "opt out of the flu shot"
    (
        "opt_out",
        _c(rf"""\bopt(?:ing|ed)?(?:\s+{_OBJ})?\s*-?\s*out\b
                (?!\s+(?:of|from)\s+(?!{_NP}|{_THESE}|this\b|everything|all\b|it\b|texting|messaging
                   |(?:your|ur|the|this)\s+(?:list|program|service|system)
                   |(?:receiving|getting)\s))
             | \boptout\b"""),
        frozenset({"en"}),
    ),
    # "deregister my number", "unenroll me from text alerts"
    (
        "unenroll",
        _c(rf"""\b(?:de\s?register|un\s?enrol+|un\s?register|unlist)
                (?:\s+(?:me|us|this\s+(?:number|phone)|my\s+(?:number|phone|cell)))?
                (?:\s+from\s+(?:(?:the|your|ur|this|all)\s+)?(?:{_NP}|text\w*|sms|messaging)|\s*(?:please|pls|now)?\s*(?:[.!?,;]|$))"""),
        frozenset({"en"}),
    ),
    # "count me out of the texts", "get me off this list", "I want off your list"
    (
        "off_the_list",
        _c(r"""\bcount\s+(?:me|us)\s+out\b
             | \b(?:get|want|be|go|me|us|taken|take\s+(?:me|us))\s+off\s+(?:of\s+)?
               (?:(?:this|your|ur|the|that|these|all|my)\s+){0,2}
               (?:(?:text|txt|texting|sms|messaging|message|mailing|contact|distribution|reminder|marketing)\s+)?
               lists?\b"""),
        frozenset({"en"}),
    ),
    # "revoke my consent", "I withdraw my consent for texts"
    (
        "revoke_consent",
        _c(
            rf"""\b(?:revoke|revoking|withdraw|withdrawing|rescind|cancel|retract)\s+(?:my\s+|all\s+|any\s+)?
                 (?:consent|permission|authorization)\b
               | \b(?:consent|permission|authorization)\s+(?:is\s+)?(?:withdrawn|revoked|rescinded)\b
               | \b(?:dont|do\s+not|no\s+longer|never)\s+(?:give\s+(?:you\s+)?|have\s+|gave\s+(?:you\s+)?)?
                 (?:my\s+)?(?:consent|permission|authorization)\s+(?:to|for)\s+
                 (?:(?:receive|receiving|get|getting|be|you\s+to)\s+)?
                 (?:{_NP}|(?:text|txt|message|contact|sms|texted|contacted|messaged)\w*)"""
        ),
        frozenset({"en"}),
    ),
    # "don't text me anymore", "do not text this number", "please don't send me any more texts", "do not contact"
    (
        "dont_contact",
        _c(rf"""\b(?:dont|do\s+not|never|please\s+not|pls\s+not|plz\s+not)\s+(?:ever\s+)?
                (?:(?:text|txt|message|msg|contact|sms|spam|bother|text\s+or\s+call|call\s+or\s+text)
                   (?:\s+{_OBJ}\b(?!\s+(?:back|before|after|so\s+(?:early|late)|this\s+(?:early|late)|at\s+night
                                          |during|until|till|til|in\s+the\s+(?:morning|evening)|at\s+work|while
                                          |on\s+(?:weekends|sundays|saturdays)))
                   |\s*(?:again|anymore|any\s+more)?\s*(?:[.!?,;]|$))
                 |send\s+(?:{_OBJ}\s+)?(?:{_NP}|{_THESE}
                   |anything\s*(?:else|more|further|again)?(?:\s+to\s+(?:this|my)\s+(?:number|phone|cell))?\s*(?:[.!?,;]|$)))"""),
        frozenset({"en"}),
    ),
    # "I didn't sign up for these texts", "I never agreed to this"
    (
        "never_agreed",
        _c(
            rf"\b(?:didnt|did\s+not|never)\s+(?:sign(?:ed)?\s+up|opt(?:ed)?\s+in|agree[d]?|ask(?:ed)?|subscribe[d]?)"
            rf"\s+(?:for|to)\s+(?:(?:receive|get|be\s+sent)\s+)?(?:{_NP}|{_THESE}|any\s+of\s+(?:this|these|{_NP}))"
        ),
        frozenset({"en"}),
    ),
    # "No texts please" as a clause of its own
    (
        "no_messages",
        _c(
            rf"""(?:^|[.!,;]\s*)no\s+{_NP}(?:\s+(?:to|at|on)\s+(?:this|my)\s+(?:number|phone|cell))?
                 \s*(?:please|pls|plz|thx|thanks|thank\s+you)?\s*(?:[.!,;]|$)"""
        ),
        frozenset({"en"}),
    ),
    # "no more texts", "please no more reminders", "no more of these"
    (
        "no_more",
        _c(rf"""\bno\s+(?:more|further)\s+(?:{_NP}|(?:of\s+)?{_THESE})
             | (?:^|[.!,;]\s*)(?:please\s+|pls\s+|plz\s+)?no\s+more(?:\s+(?:please|pls|plz))?\s*(?:[.!,;]|$)"""),
        frozenset({"en"}),
    ),
    # "enough with the texts"
    ("enough", _c(rf"\benough\s+(?:with\s+|of\s+)?{_NP}"), frozenset({"en"})),
    # "I'm done with these texts", "sick of these reminders", "tired of getting these"
    (
        "fed_up",
        _c(rf"""\b(?:done|finished|tired|sick|fed\s+up|over)\s+(?:with\s+|of\s+)?(?:getting\s+|receiving\s+)?
                (?:{_NP}|{_THESE})"""),
        frozenset({"en"}),
    ),
    # "texts not wanted", "these messages are unwanted", "this number should not receive texts"
    (
        "not_wanted",
        _c(rf"""\b{_NOUN}\s+(?:are\s+|is\s+)?(?:not\s+(?:wanted|welcome|needed)|unwanted|unwelcome)\b
             | \bshould\s*(?:not|nt)\s+(?:receive|get|be\s+(?:getting|receiving))\s+{_NP}"""),
        frozenset({"en"}),
    ),
    # "add me to your do not text list", "DNC"
    (
        "do_not_contact_list",
        _c(
            r"\b(?:do\s+not|dont)\s+(?:text|contact|call|message|txt|sms|disturb)\s+(?:list|registry|register)\b|\bdnc\b"
        ),
        frozenset({"en"}),
    ),
    # "I will block this number", "blocking you"
    ("block", _c(r"\bblock(?:ing|ed)?\s+(?:you|u|this\s+number|your\s+number|ur\s+number)\b"), frozenset({"en"})),
    # "I don't want these messages", "my mom doesn't want these texts", "I'd prefer not to get texts"
    (
        "dont_want",
        _c(rf"""\b(?:(?:dont|do\s+not|doesnt|does\s+not|no\s+longer)\s+(?:want|wish|like|care|need)
                 |(?:prefer|rather)\s+not)(?:\s+to)?
                (?:(?:\s+(?:receive|get|be\s+getting|be\s+receiving|keep\s+getting|keep\s+receiving|have))?
                   \s+(?:{_NP}|{_THESE})
                 |\s+be\s+(?:contacted|texted|messaged|sent\s+(?:{_NP}|{_THESE}))\b)"""),
        frozenset({"en"}),
    ),
    # "remove me from this list", "take my number off your list", "delete my number from your system"
    (
        "remove_from_list",
        _c(rf"""(?:\b(?:remove|take|delete|drop|erase|get|scratch|unlist|put|unenroll|unenrol|unregister)\s+
                  (?:me|us|him|her|them|(?:my|this|his|her|our|their)\s+(?:number|phone|cell|info|name|contact))
               |\b(?:be|been|get|got)\s+(?:removed|taken|deleted|dropped|unenrolled|unlisted))\s+
               (?:off|from|out\s+of)\s+
               (?:(?:your|ur|the|this|that|these|all|of|my)\s+){{0,2}}
               (?:(?:text|txt|texting|sms|messaging|message|mailing|contact|call|calling|distribution|reminder|
                  marketing|do\s+not\s+(?:text|contact|call))\s+)?
               (?:list|lists|system|database|records|contacts|(?:all\s+|any\s+)?(?:future\s+)?{_NOUN})\b"""),
        frozenset({"en"}),
    ),
    # "remove me", "please remove my number", "take me off", "pls remove" as the whole request
    (
        "remove_me",
        _c(r"""(?:\b(?:remove|delete|unlist)\s+(?:me|us|(?:my|this|his|her|their)\s+number)
               |\btake\s+(?:me|my\s+number)\s+off
               |\b(?:please|pls|plz)\s+(?:remove|unlist)
               |\b(?:be|been|get|got)\s+removed)
               (?:\s+(?:please|pls|plz|now|asap|thanks|thank\s+you|thx))?\s*(?:[.!?,;]|$)"""),
        frozenset({"en"}),
    ),
    # "wrong number", "you have the wrong person"
    (
        "wrong_number",
        _c(r"\bwrong\s+(?:number|numbr|person|phone|guy|girl|lady|man|family|people|contact|\#|\#s)(?:\b|$)"),
        frozenset({"en"}),
    ),
    # "I'm not your patient", "no one by that name here", "this phone belongs to someone else now"
    (
        "not_a_patient",
        _c(r"""\b(?:im|i\s+am|we\s+are|were)\s+not\s+(?:your|a)\s+patient\b(?!\s+(?:yet|there\s+yet))
             | \bnever\s+been\s+(?:a\s+|your\s+)?patient
             | \bno\s+(?:one|body)\s+(?:by\s+(?:that|this)\s+name|named\s+\w+|called\s+\w+)
             | \bthere(?:\s+is|\s+s|s)\s+no\s+\w+\s+(?:here|at\s+this\s+(?:number|phone))
             | \b(?:belongs\s+to|is)\s+(?:someone|somebody)\s+else"""),
        frozenset({"en"}),
    ),
    # "Maria doesn't have this number anymore", "this isn't Maria's phone"
    (
        "not_their_number",
        _c(r"""\b(?:doesnt|does\s+not|dont|do\s+not|no\s+longer)\s+(?:have|has|use|uses|own|owns)\s+this\s+
                 (?:number|phone|cell)\b
             | \b(?:this|it)\s+(?:is\s+not|isnt|aint)\s+\w+s\s+(?:number|phone|cell)\b"""),
        frozenset({"en"}),
    ),
    # "leave me alone", "lose my number"
    (
        "leave_me_alone",
        _c(r"""\bleave\s+(?:me|us)\s+(?:the\s+hell\s+|tf\s+)?(?:alone|be)\b|\b(?:lose|forget|delete)\s+(?:my|this)\s+(?:number|\#)
             | (?:^|[.!?,;]\s*)(?:please\s+|just\s+|now\s+)?(?:go\s+away|buzz\s+off|get\s+lost|piss\s+off|back\s+off
                 |f\s+off|fuck\s+off|knock\s+it\s+off|cut\s+it\s+out|give\s+it\s+a\s+rest|cease\s+and\s+desist)\b"""),
        frozenset({"en"}),
    ),
    # Spanish: "dejen de escribirme", "paren de mandarme mensajes", "quiero dejar de recibir mensajes"
    (
        "es_dejen_de",
        _c(rf"""\b(?:dejen|deje|dejes|deja|dejar|dejo|dejamos|paren|pare|para|parar|terminen|basta)\s+de\s+
                (?:{_ES_SEND}|recibir\s+{_ES_NP})"""),
        frozenset({"es"}),
    ),
    # "no me manden más mensajes", "ya no me escriban", "no me molesten"
    (
        "es_no_me_manden",
        _c(rf"""\bno\s+(?:me|nos|le|les)\s+(?:\w+\s+)?
               (?:manden|mande|mandes|envien|envie|envies|escriban|escriba|escribas|texteen|textee|textees|
                  molesten|moleste|contacten|contacte|vuelvan\s+a\s+(?:escribir|mandar|enviar|contactar))\b
               (?=\s*(?:$|[.,;!?]|mas\b|nada\b|ya\b|nunca\b|otra\s+vez|de\s+nuevo|por\s+favor|porfa|{_ES_NP}))"""),
        frozenset({"es"}),
    ),
    # "favor de no mandar más textos"
    (
        "es_no_mandar",
        _c(rf"""\bno\s+(?:mandar|enviar|escribir|textear)(?:me|nos|le|les)?\s+{_ES_NP}
             | \bno\s+(?:manden|mande|envien|envie|escriban|escriba|texteen)\s+(?:mas\s+)?{_ES_NP}"""),
        frozenset({"es"}),
    ),
    # "no vuelvan a contactarme", "nunca me vuelvan a mandar mensajes"
    (
        "es_never_again",
        _c(
            r"\b(?:no|nunca|jamas)\s+(?:me\s+|nos\s+|le\s+)?vuelvan?\s+a\s+(?:escribir|mandar|enviar|contactar|llamar|molestar|textear)\w*"
        ),
        frozenset({"es"}),
    ),
    # "paren los mensajes", "alto a los mensajes", "suspendan los recordatorios", "stop mandarme mensajes"
    (
        "es_stop_messages",
        _c(rf"\b{_ES_HALT}\s+{_ES_NP}|\bstop\s+(?:de\s+)?(?:mandar|enviar|escribir|textear)\w*"),
        frozenset({"es"}),
    ),
    # "ya no quiero mensajes", "mi mamá no quiere recibir estos mensajes"
    (
        "es_no_quiero",
        _c(rf"""\bno\s+(?:quiero|queremos|quiere|quieren|deseo|desea|deseamos|necesito|me\s+interesan?)\s+
                (?:(?:recibir|tener|seguir\s+recibiendo)\s+)?{_ES_NP}
             | \bno\s+(?:quiero|queremos|deseo)\s+(?:recibir|saber)\s+(?:nada|mas\s+nada)\b
             | \bno\s+(?:quiero|queremos|deseo)\s+(?:estar|seguir|ser\s+parte)\s+(?:en|de)\s+(?:la|su|esta|sus)\s+listas?\b(?!\s+de\s+espera)
             | \bno\s+(?:quiero|queremos|quiere|quieren|deseo|desea)\s+que\s+(?:me|nos|le|les)\s+(?:sigan\s+)?
               (?:manden|mandando|envien|enviando|escriban|escribiendo|contacten|molesten)\b
               (?!\s+(?:la|el|las|los|mi|mis|su|sus|un|una)\s+(?!(?:mas\s+)?{_ES_NOUN}))"""),
        frozenset({"es"}),
    ),
    # "bórrenme de la lista", "quítenme de su lista", "eliminen mi número"
    (
        "es_remove_from_list",
        _c(r"""\b(?:borren|borre|borrar|borra|quiten|quite|quitar|quita|saquen|saque|sacar|saca|
                  eliminen|elimine|eliminar|elimina)(?:me|nos|lo|la|le)?\s+
               (?:(?:de|del)\s+(?:(?:la|su|sus|esta|este|el|tu|esa)\s+)?(?:lista(?!\s+de\s+espera)|sistema|base)
                 |(?:mi|este)\s+(?:numero|telefono|celular))
             | \b(?:borrenme|quitenme|saquenme|eliminenme|borrame|quitame|sacame|eliminame|borreme|quiteme|saqueme)\b
               (?=\s*(?:$|[.,;!?]|por\s+favor|ya\b|de\s+(?:aqui|ahi|todo|sus|la|los|esta|este)))
             | \b(?:salirme|salir|me\s+salgo|sacarme)\s+de\s+(?:la|su|esta|sus)\s+(?:lista|mensajes)\b(?!\s+de\s+espera)"""),
        frozenset({"es"}),
    ),
    # "quiero darme de baja", "denme de baja", "cancelar suscripción", "desuscribirme"
    (
        "es_baja",
        _c(r"""\b(?:dar|darme|darnos|darse|den|denme|dennos|deme|doy|me\s+doy)\s+de\s+baja\b
                (?=\s*(?:$|[.,;!?]|por\s+favor|porfa|ya\b
                   |de\s+(?:la\s+lista|los\s+mensajes|los\s+textos|mensajes|textos|este|esta|sus|todo)))
             | \bcancel\w*\s+(?:mi\s+|la\s+)?suscripcion\b
             | \bdesu?s?crib\w*"""),
        frozenset({"es"}),
    ),
    # "cancelen los mensajes"
    (
        "es_cancel_messages",
        _c(rf"\bcancel\w*\s+(?:(?:los|las|mis|todos|todas|sus)\s+){{0,2}}{_ES_NOUN}"),
        frozenset({"es"}),
    ),
    # "no más mensajes", "ya basta de mensajes"
    (
        "es_no_mas",
        _c(rf"""\b(?:no\s+mas|no\s+more|basta\s+(?:de|con))\s+{_ES_NP}
             | (?:^|[.!,;]\s*)(?:ya\s+)?no\s+mas\s*,?\s*(?:por\s+favor|gracias)?\s*(?:[.!,;]|$)
             | (?:^|[.!,;]\s*)(?:ya\s+)?(?:no|nada\s+de|sin)\s+{_ES_NP}\s*(?:por\s+favor|gracias)?\s*(?:[.!,;?]|$)"""),
        frozenset({"es"}),
    ),
    # "retiro mi consentimiento", "no autorizo que me manden mensajes"
    (
        "es_revoke_consent",
        _c(rf"""\b(?:retiro|revoco|cancelo|retirar|revocar|quito)\s+(?:mi|el)\s+(?:consentimiento|permiso|autorizacion)
             | \bno\s+(?:autorizo|doy\s+(?:mi\s+)?(?:permiso|consentimiento|autorizacion))\s+
               (?:para\s+(?:recibir\s+)?{_ES_NP}|que\s+me\s+(?:manden|envien|escriban|contacten|texteen))"""),
        frozenset({"es"}),
    ),
    # "nunca pedí estos mensajes", "nunca me inscribí para esto"
    (
        "es_never_agreed",
        _c(rf"""\b(?:nunca|jamas)\s+(?:me\s+)?(?:inscribi|suscribi|pedi|autorice|acepte|solicite)\w*\s+
                (?:para\s+|a\s+)?(?:esto|estos|estas|{_ES_NP})"""),
        frozenset({"es"}),
    ),
    # "número equivocado", "se equivocaron de número"
    (
        "es_wrong_number",
        _c(r"""\bnumero\s+(?:equivocado|incorrecto|errado)\b|\bpersona\s+(?:equivocada|incorrecta)\b
             | \bequivoc\w*\s+de\s+(?:numero|persona)\b
             | \bno\s+(?:vive|hay|existe)\s+(?:ningun[ao]?|nadie)\b"""),
        frozenset({"es"}),
    ),
    # "ya no usen este número", "este número ya no es de Juan"
    (
        "es_not_their_number",
        _c(r"""\bno\s+(?:usen|use|escriban\s+a|manden\s+a|marquen\s+a|escribir\s+a|mandar\s+(?:mensajes\s+)?a|
                  envien\s+(?:mensajes\s+)?a)\s+este\s+(?:numero|telefono|celular)\b
             | \beste\s+(?:numero|telefono|celular)\s+(?:ya\s+)?no\s+es\s+de\b"""),
        frozenset({"es"}),
    ),
    # "déjenme en paz"
    (
        "es_leave_me_alone",
        _c(r"\b(?:dejenme|dejeme|dejame|dejennos)\s+en\s+paz\b|\bno\s+(?:me\s+|nos\s+)?molesten\b"),
        frozenset({"es"}),
    ),
)


# --- a clause that is only a stop word and politeness: "stop pls", "STOP!!!", "alto por favor" --------------------

_STOP_SIGN = "\U0001f6d1"
_TOKEN = re.compile(r"[a-z]+|" + _STOP_SIGN)
_CLAUSES = re.compile(r"[,;:.!?()\n]+|\s[-–—]+\s")
_STOP_TOKEN = {
    "en": re.compile(
        r"s+t+o+p+|sotp|stpo|stp|stahp|stopall|optout|unsub|cease|desist|halt|enough|unenroll|unregister|deregister|"
        r"unlist|unfollow|block|remove|dnc|spam|nomore|" + _STOP_SIGN
    ),
    "es": re.compile(r"alto|parar|paren|basta|baja|detener|detengan|" + _STOP_SIGN),
}
_FILLER = {
    "en": frozenset(
        "please pls plz plse pleas kindly now it this these that all already asap immediately right just with "
        "ok okay thanks thank you thx ty omg ugh and already me".split()
    ),
    "es": frozenset("por favor porfa porfavor ya gracias ahora mismo".split()),
}


def _standalone_stop(text: str, languages: tuple[str, ...]) -> str:
    filler = frozenset().union(*(_FILLER[lang] for lang in languages))
    for clause in _CLAUSES.split(text):
        tokens = [t for t in _TOKEN.findall(clause) if t not in filler]
        if not tokens:
            continue
        for lang in languages:
            if all(_STOP_TOKEN[lang].fullmatch(t) for t in tokens):
                return "stop_alone" if lang == "en" else f"{lang}_stop_alone"
    return ""


# --- entry point -------------------------------------------------------------------------------------------------

_SENTENCES = re.compile(r"[^.!?\n]+[.!?\n]*")


def read_rules(text: str, languages: tuple[str, ...]) -> tuple[str, str]:
    """(the opt-out rule that matched, the first guard that set a sentence aside) for normalised `text`."""
    guarded = ""
    for name, pattern, rule_langs in _GUARDS:
        if rule_langs.isdisjoint(languages) or not pattern.search(text):
            continue
        guarded = guarded or name
        # Drop every sentence the guard matches in; the rest of the reply is still read.
        text = "".join(s if not pattern.search(s) else " " for s in _SENTENCES.findall(text))
    for name, pattern, rule_langs in _RULES:
        if not rule_langs.isdisjoint(languages) and pattern.search(text):
            return name, guarded
    return _standalone_stop(text, languages), guarded


def decide(rule: str, guarded: str, probability: float) -> Assessment:
    """The rules' reading and the model's probability, combined."""
    if rule:
        return Assessment(True, rule, certain=probability >= AUTO_AGREEMENT, probability=probability)
    if probability >= FLAG_THRESHOLD and not guarded:
        return Assessment(True, "model", probability=probability)
    return Assessment(False, guarded, probability=probability)


def assess(body: str, languages: Iterable[str] = ("en",)) -> Assessment:
    """Whether a reply plausibly asks to stop messages, whether that is clear enough to act on, and why.

    `languages` are the practice's languages; English rules always apply, other
    languages' rules only when enabled. The model reads every language: a
    request in a language the practice has not enabled may still be flagged
    for staff, never acted on alone. When nothing fires, `rule` names the
    guard that set a sentence aside, if any, else "".
    """
    text = normalise(body)
    if not text.strip(" .,;:!?#\n"):
        return Assessment(False, "")
    rule, guarded = read_rules(text, enabled_languages(languages))
    return decide(rule, guarded, model().probability(text))
