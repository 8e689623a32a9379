"""Message content: personalization tokens, the practice-name prefix on texts, the email layout.

Content is written once per message with tokens such as ``{{first_name}}``
and rendered per recipient by the worker. The tokens are Django template
variables; nothing else of the template language is allowed in content (no
tags, no attribute lookups), so a message can neither include files nor reach
into objects. A few harmless filters are allowed (``{{first_name|default:"there"}}``).

Email is rendered into the project's layout (``messaging/email.html`` and
``email.txt``): the practice's name above; below, a link to the patient's
portal (their notification settings) in every email to a patient, and for
broadcast and marketing email the visible unsubscribe link, next to the
``List-Unsubscribe`` headers (RFC 2369 and RFC 8058 one-click).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import TextNode, VariableNode
from django.template.loader import render_to_string
from django.utils.html import conditional_escape, strip_tags

from consentry.consent import tokens
from consentry.errors import InvalidInput

TOKENS = ("first_name", "last_name", "practice_name", "practice_phone")
FILTERS = frozenset({"default", "upper", "lower", "title", "capfirst"})
MAX_SMS_CHARS = 1600  # Twilio's limit for one message body

_ENGINE = Engine()  # escaping is the context's: on for HTML, off for text


def _problem(template) -> str:
    """Why this compiled content is not allowed, or ""."""
    for node in template.nodelist:
        if isinstance(node, TextNode):
            if "{{" in node.s or "{%" in node.s:
                return "a token is unclosed: write tokens as {{first_name}}"
            continue
        if not isinstance(node, VariableNode):
            return "template tags such as {% ... %} are not allowed; use tokens like {{first_name}}"
        expression = node.filter_expression
        variable = expression.var
        name = getattr(variable, "var", None)
        if not isinstance(name, str) or getattr(variable, "lookups", None) != (name,) or name not in TOKENS:
            known = ", ".join("{{" + t + "}}" for t in TOKENS)
            return f"unknown token {{{{{expression.token}}}}}; the tokens are {known}"
        for func, _args in expression.filters:
            filter_name = getattr(func, "_filter_name", func.__name__)
            if filter_name not in FILTERS:
                return f"the filter |{filter_name} is not allowed; allowed: {', '.join(sorted(FILTERS))}"
    return ""


@lru_cache(maxsize=256)
def _compile(text: str):
    """(template, problem, parts): the compiled content, or None and why it cannot be used.

    ``parts`` is the content as text and token names, when no token has a
    filter: filling those in needs no template engine (a worker renders one
    per message sent).
    """
    try:
        template = _ENGINE.from_string(text)
    except TemplateSyntaxError as exc:
        return None, f"cannot read the template: {exc}", None
    problem = _problem(template)
    if problem:
        return None, problem, None
    parts = None
    variables = [node for node in template.nodelist if isinstance(node, VariableNode)]
    if not any(node.filter_expression.filters for node in variables):
        parts = tuple(
            # check() let through only text and {{ variables }}: every other node is a VariableNode.
            (False, node.s)
            if isinstance(node, TextNode)
            else (True, cast(VariableNode, node).filter_expression.var.var)
            for node in template.nodelist
        )
    return template, "", parts


def check(text: str, field: str) -> None:
    """Raise ``InvalidInput`` (→ 422) naming the field for content that is not plain text with known tokens."""
    if "{" in text and (problem := _compile(text)[1]):
        raise InvalidInput(field, problem)


def personalize(text: str, values: dict, *, html: bool = False) -> str:
    """The text with its tokens filled in. Content that was never checked (a reply typed
    into a conversation) and is not valid template text is sent exactly as written."""
    if "{" not in text:
        return text
    template, _problem, parts = _compile(text)
    if template is None:
        return text
    if parts is not None:
        return "".join(
            (conditional_escape(values[value]) if html else str(values[value])) if token else value
            for token, value in parts
        )
    return template.render(Context(values, autoescape=html))


def values_for(practice, patient) -> dict:
    return {
        "first_name": patient.first_name if patient else "",
        "last_name": patient.last_name if patient else "",
        "practice_name": practice.name,
        "practice_phone": practice.contact_phone or practice.texting_number,
    }


def sms_prefix(practice) -> str:
    return f"{practice.name}: "


def sms_text(practice, body: str, hint: str = "") -> str:
    """A text names its sender first (CTIA); a body that already does is left as it is. ``hint``, how
    to opt out, ends it after a space unless it says so already (see messaging/hints.py); a text too
    long is cut before the hint."""
    text = body if body.lower().startswith(practice.name.lower()) else sms_prefix(practice) + body
    end = f" {hint}" if hint and hint.casefold() not in text.casefold() else ""
    limit = MAX_SMS_CHARS - len(end)
    return (text if len(text) <= limit else text[: limit - 1] + "…") + end


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str
    headers: dict


def email(practice, patient, address: str, content: dict, *, with_unsubscribe: bool, patient_id=None) -> Email:
    """The email for one recipient: personalized, in the layout, with unsubscribe link and headers if asked.

    With ``patient_id`` (an email to a patient), the footer links the patient's portal.
    """
    values = values_for(practice, patient)
    subject = personalize(content["subject"], values)
    text = personalize(content["text"], values) if content["text"].strip() else ""
    html = personalize(content["html"], values, html=True) if content["html"].strip() else ""
    if not text:
        text = strip_tags(html).strip()
    headers: dict = {}
    unsubscribe = ""
    if with_unsubscribe:
        unsubscribe = tokens.unsubscribe_url(practice.pk, address)
        headers = {
            "List-Unsubscribe": f"<{unsubscribe}>, <{tokens.unsubscribe_mailto(practice.pk, address)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    portal = tokens.public_url(f"/portal/{tokens.portal_token(patient_id)}") if patient_id is not None else ""
    context = {
        **values,
        "subject": subject,
        "text": text,
        "html": html,
        "unsubscribe_url": unsubscribe,
        "portal_url": portal,
    }
    return Email(
        subject=subject,
        text=render_to_string("messaging/email.txt", context).strip() + "\n",
        html=render_to_string("messaging/email.html", context),
        headers=headers,
    )
