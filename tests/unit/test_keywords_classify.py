"""Keyword classification: whole message, case-insensitive, edges trimmed; English always, Spanish when enabled."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentry.keywords.classify import (
    HELP,
    HELP_ES,
    LANGUAGES,
    OPT_IN,
    OPT_IN_ES,
    OPT_OUT,
    OPT_OUT_ES,
    KeywordKind,
    classify,
    classify_in,
    enabled_languages,
)


@pytest.mark.parametrize("word", sorted(OPT_OUT))
def test_standard_opt_out_keywords(word):
    assert classify(word) == classify(word.lower()) == classify(f"  {word.title()}!! ") == KeywordKind.OPT_OUT


@pytest.mark.parametrize("word", sorted(OPT_IN))
def test_standard_opt_in_keywords(word):
    assert classify(word) == classify(f"{word.lower()}.") == KeywordKind.OPT_IN


@pytest.mark.parametrize("word", sorted(HELP))
def test_help_keywords(word):
    assert classify(word) == classify(f"{word.lower()}?") == KeywordKind.HELP


def test_the_keyword_lists_are_the_ctia_standard_ones():
    assert OPT_OUT == {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
    assert OPT_IN == {"START", "YES", "UNSTOP"}
    assert HELP == {"HELP", "INFO"}


@pytest.mark.parametrize(
    "body",
    ["stop messages", "please stop", "can I cancel my appointment?", "yes please", "UNSUB", "RECARE", "", "   ", "🛑"],
)
def test_anything_but_an_exact_keyword_is_not_a_keyword(body):
    assert classify(body) == KeywordKind.NONE


def test_inner_whitespace_of_opt_out_is_collapsed():
    assert classify("opt \t out") == KeywordKind.OPT_OUT


# --- languages -------------------------------------------------------------------------------------------------

SPANISH = ("en", "es")


def test_the_spanish_lists():
    assert LANGUAGES == ("en", "es")
    assert OPT_OUT_ES == {"PARAR", "ALTO", "DETENER", "CANCELAR", "BAJA", "NO MAS"}
    assert OPT_IN_ES == {"COMENZAR", "INICIAR", "SI"}
    assert HELP_ES == {"AYUDA"}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("PARAR", KeywordKind.OPT_OUT),
        ("parar", KeywordKind.OPT_OUT),
        ("¡Alto!", KeywordKind.OPT_OUT),
        ("  detener. ", KeywordKind.OPT_OUT),
        ("Cancelar", KeywordKind.OPT_OUT),
        ("BAJA!!!", KeywordKind.OPT_OUT),
        ("NO MÁS", KeywordKind.OPT_OUT),
        ("no mas", KeywordKind.OPT_OUT),
        ("No  más!", KeywordKind.OPT_OUT),
        ("COMENZAR", KeywordKind.OPT_IN),
        ("iniciar.", KeywordKind.OPT_IN),
        ("Sí", KeywordKind.OPT_IN),
        ("si", KeywordKind.OPT_IN),
        ("SÍ!", KeywordKind.OPT_IN),
        ("¿Ayuda?", KeywordKind.HELP),
        ("ayuda", KeywordKind.HELP),
    ],
)
def test_spanish_keywords_when_spanish_is_enabled(body, kind):
    assert classify_in(body, SPANISH) == (kind, "es")
    assert classify_in(body, ["ES-mx"]) == (kind, "es")
    # English alone does not know them.
    assert classify(body) == KeywordKind.NONE
    assert classify_in(body, ("en",)) == (KeywordKind.NONE, "")
    assert classify_in(body, ()) == (KeywordKind.NONE, "")


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", KeywordKind.OPT_OUT),
        ("cancel!", KeywordKind.OPT_OUT),
        ("Yes", KeywordKind.OPT_IN),
        ("info", KeywordKind.HELP),
    ],
)
def test_english_is_always_on_and_reported_as_english(body, kind):
    assert classify_in(body, ()) == (kind, "en")
    assert classify_in(body, ("es",)) == (kind, "en")
    assert classify_in(body, SPANISH) == (kind, "en")


@pytest.mark.parametrize(
    "body",
    ["no me manden más mensajes", "parar por favor", "sí, ahí estaré", "SIN", "ALTOS", "no", "más", "COMENZAR YA"],
)
def test_spanish_phrases_are_not_keywords(body):
    assert classify_in(body, SPANISH) == (KeywordKind.NONE, "")


def test_accents_are_optional_only_for_spanish():
    # English matching stays exactly what classify() does.
    assert classify_in("STÓP", SPANISH) == (KeywordKind.NONE, "")
    assert classify_in("DETENÉR", SPANISH) == (KeywordKind.OPT_OUT, "es")


def test_language_codes():
    assert enabled_languages(()) == ("en",)
    assert enabled_languages(["es"]) == ("en", "es")
    assert enabled_languages("es") == ("en", "es")
    assert enabled_languages(["fr", "es_US", "EN"]) == ("en", "es")


# Any text, and text full of lone surrogates, controls, accents and spaces (what a carrier may hand over).
ANY_TEXT = st.text() | st.text(st.characters(categories=["Cs", "Cc", "Mn", "L", "N", "P", "Z"]))


@given(ANY_TEXT, st.lists(st.sampled_from(["en", "es", "fr", "es-MX", ""]), max_size=3))
def test_classify_in_english_only_agrees_with_classify(body, languages):
    kind, lang = classify_in(body, [code for code in languages if not code.startswith("es")])
    assert kind == classify(body)
    assert lang == ("" if kind == KeywordKind.NONE else "en")
    kind, lang = classify_in(body, languages)
    assert lang in ("", *LANGUAGES)
