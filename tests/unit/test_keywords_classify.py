"""Keyword classification: whole message, case-insensitive, edges trimmed."""

import pytest

from consentry.keywords.classify import HELP, OPT_IN, OPT_OUT, KeywordKind, classify


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
