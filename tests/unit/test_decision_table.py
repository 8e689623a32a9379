"""The decision table in the code (``KIND_POLICY``) is the one in the README, row for row."""

from pathlib import Path

from consentry.consent.rules import AUTOMATED_KINDS, KIND_POLICY, QUIET_HOURS_KINDS, Selection, Unsubscribe
from consentry.vocabulary import Kind

README = Path(__file__).resolve().parents[2] / "README.md"
KINDS = [Kind.AUTOMATION, Kind.BROADCAST, Kind.MANUAL, Kind.NOTIFICATION]


def _readme_table() -> dict[str, list[str]]:
    text = README.read_text()
    start = text.index("| rule | automation | broadcast | manual (staff) | notification |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _yes(cell: str) -> bool:
    return cell.startswith("✓")


def test_the_readme_table_and_kind_policy_agree():
    table = _readme_table()
    for column, kind in enumerate(KINDS):
        policy = KIND_POLICY[kind]
        assert _yes(table["SMS opt-out (STOP)"][column]) == policy.address_consent, kind
        assert _yes(table["Blocked Communications category"][column]) == policy.address_consent, kind
        assert _yes(table["do-not-contact"][column]) == policy.do_not_contact, kind
        assert _yes(table["preferred phone"][column]) == policy.preferred_phone, kind
        assert _yes(table["quiet hours (defer, never drop)"][column]) == policy.quiet_hours, kind
        assert _yes(table["frequency cap (optional)"][column]) == policy.frequency_cap, kind
        assert ("warns" in table["PMS marketing consent"][column]) == policy.marketing_warning, kind
        unsubscribe = table["email unsubscribed / bounced"][column]
        assert policy.unsubscribe == (
            Unsubscribe.MARKETING_ONLY if "for marketing" in unsubscribe else Unsubscribe.ALWAYS
        ), kind
        channel = table["channel"][column]
        assert policy.channels == (
            Selection.FIRST_REACHABLE
            if channel.startswith("first reachable")
            else Selection.EVERY_WRITTEN
            if "with content" in channel
            else Selection.ACTIVE_FOR_TYPE
        ), kind


def test_the_service_own_kinds_answer_or_confirm_and_never_wait():
    reply, request = KIND_POLICY[Kind.KEYWORD_REPLY], KIND_POLICY[Kind.CONSENT_REQUEST]
    assert not reply.address_consent  # the confirmation of a STOP reaches the number that sent it
    assert request.address_consent and request.unsubscribe == Unsubscribe.NEVER  # a bounce still stops it
    assert Kind.KEYWORD_REPLY not in QUIET_HOURS_KINDS | AUTOMATED_KINDS
    assert QUIET_HOURS_KINDS == AUTOMATED_KINDS == {Kind.AUTOMATION, Kind.BROADCAST, Kind.NOTIFICATION}
    assert set(KIND_POLICY) == set(Kind)
