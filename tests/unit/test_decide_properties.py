"""Properties of decide() over random recipients, consent states and requests.

The strategies draw addresses from small pools so that opt-outs, unsubscribes,
bounces and blocks often land on the recipient's own addresses (and sometimes
on somebody else's), and a preferred phone that is sometimes on file,
sometimes not.
"""

from dataclasses import replace
from itertools import combinations, permutations

from hypothesis import given, settings
from hypothesis import strategies as st

from consentry.consent.rules import ConsentState, Phone, Recipient, SendRequest, decide
from consentry.vocabulary import BUILTIN_CATEGORIES, Channel, Kind, LineType, MarketingConsent, Reason, Status
from tests.unit.factories import ALL_CATEGORIES, NOW

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None)
# The extra invariants below (a)-(f) get fewer examples to keep the suite fast.
EXTRA_SETTINGS = settings(max_examples=100, deadline=None, database=None)

NUMBERS = ("+15555550101", "+15555550102", "+15555550103", "+15555550104")
EMAILS = ("pat@example.com", "parent@example.com", "other@example.com")
CATEGORY_KEYS = tuple(BUILTIN_CATEGORIES)
PHONE_CHANNELS = (Channel.SMS, Channel.VOICE, Channel.EMAIL)

# Hypothesis spends most of its time per draw, so the strategies below draw
# few, flat values: every small set is picked whole from a precomputed list.


def _subsets(items, min_size=0):
    return [frozenset(c) for r in range(min_size, len(items) + 1) for c in combinations(items, r)]


ALL_PHONES = [
    Phone(number, line_type, valid) for number in NUMBERS for line_type in LineType for valid in (True, False)
]
EMAIL_LISTS = [p for r in range(3) for p in permutations(EMAILS, r)]  # 0-2 emails, in order
NUMBER_SETS = _subsets(NUMBERS)
EMAIL_SETS = _subsets(EMAILS)
CHANNEL_SETS = _subsets(tuple(Channel))
OVERRIDES = [(key, channel, on) for key in CATEGORY_KEYS for channel in Channel for on in (True, False)]
CONTENT_SETS = {
    True: _subsets(tuple(Channel), min_size=1),  # notifications may carry in-app content
    False: _subsets(PHONE_CHANNELS, min_size=1),  # the API refuses in-app content elsewhere
}

phones_st = st.lists(st.sampled_from(ALL_PHONES), max_size=3, unique_by=lambda phone: phone.number).map(tuple)


@st.composite
def recipients(draw) -> Recipient:
    overrides = draw(st.lists(st.sampled_from(OVERRIDES), max_size=3))
    return Recipient(
        patient_id=draw(st.integers(1, 10_000)),
        phones=draw(phones_st),
        emails=draw(st.sampled_from(EMAIL_LISTS)),
        # Phones come from the same pool, so the preferred number is often on
        # file and sometimes not (a stale preference).
        preferred_phone=draw(st.sampled_from((None,) + NUMBERS)),
        do_not_contact=draw(st.booleans()),
        marketing_consent=draw(st.sampled_from(list(MarketingConsent))),
        channel_opt_outs=draw(st.sampled_from(CHANNEL_SETS)),
        notification_overrides={(key, channel): on for key, channel, on in overrides},
    )


@st.composite
def consent_states(draw, category_key: str) -> ConsentState:
    # Blocks are for the request's own category half of the time, else for any.
    key_st = st.one_of(st.just(category_key), st.sampled_from(CATEGORY_KEYS))
    blocks: dict[str, set[str]] = {}
    for number, key in draw(st.lists(st.tuples(st.sampled_from(NUMBERS), key_st), max_size=3)):
        blocks.setdefault(number, set()).add(key)
    return ConsentState(
        sms_opted_out=draw(st.sampled_from(NUMBER_SETS)),
        email_unsubscribed=draw(st.sampled_from(EMAIL_SETS)),
        email_bounced=draw(st.sampled_from(EMAIL_SETS)),
        blocks={number: frozenset(keys) for number, keys in blocks.items()},
    )


@st.composite
def requests(draw, kinds=tuple(Kind)) -> SendRequest:
    kind = draw(st.sampled_from(list(kinds)))
    return SendRequest(
        kind=kind,
        category=draw(st.sampled_from(ALL_CATEGORIES)),
        content_channels=draw(st.sampled_from(CONTENT_SETS[kind == Kind.NOTIFICATION])),
    )


@st.composite
def cases(draw, kinds=tuple(Kind)):
    request = draw(requests(kinds))
    return request, draw(recipients()), draw(consent_states(request.category.key))


def _decide(case):
    request, recipient, consent = case
    return decide(request, recipient, consent, NOW)


# (a) ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases())
def test_never_a_pending_sms_to_an_opted_out_number_except_a_keyword_reply(case):
    request, _, consent = case
    if request.kind == Kind.KEYWORD_REPLY:
        return
    for planned in _decide(case).sends:
        if planned.channel == Channel.SMS:
            assert planned.address not in consent.sms_opted_out


# (b) ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases(kinds=(Kind.AUTOMATION, Kind.BROADCAST)))
def test_at_most_one_message_per_recipient_for_automations_and_broadcasts(case):
    decision = _decide(case)

    assert len(decision.sends) <= 1
    if decision.sends:
        # Listed last, after the channels tried and refused.
        assert decision.deliveries[-1] == decision.sends[0]


# (c) ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases(), st.sampled_from(list(MarketingConsent)))
def test_marketing_consent_never_changes_a_transactional_plan(case, other_consent):
    request, recipient, consent = case
    if request.category.marketing:
        return
    changed = replace(recipient, marketing_consent=other_consent)

    before = decide(request, recipient, consent, NOW)
    after = decide(request, changed, consent, NOW)

    assert after.deliveries == before.deliveries


@PROPERTY_SETTINGS
@given(cases())
def test_without_marketing_consent_nothing_marketing_goes_out(case):
    request, recipient, consent = case
    if not request.category.marketing or request.kind == Kind.KEYWORD_REPLY:
        return
    for answer in (MarketingConsent.NO, MarketingConsent.UNKNOWN):
        decision = decide(request, replace(recipient, marketing_consent=answer), consent, NOW)
        assert decision.sends == ()


# (d) ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases(kinds=(Kind.AUTOMATION, Kind.BROADCAST, Kind.MANUAL, Kind.NOTIFICATION)))
def test_never_a_pending_delivery_to_a_number_blocked_for_that_category(case):
    request, _, consent = case
    for planned in _decide(case).sends:
        if planned.channel in (Channel.SMS, Channel.VOICE):
            assert request.category.key not in consent.blocks.get(planned.address, frozenset())


# (e) ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases())
def test_every_skip_has_a_reason_and_no_send_has_one(case):
    decision = _decide(case)
    for planned in decision.deliveries:
        if planned.status == Status.SKIPPED:
            assert planned.reason is not None
        if planned.status == Status.PENDING:
            assert planned.reason is None
    if decision.deliveries and not decision.sends:
        # The first specific reason; "no address at all" only when nothing says more.
        specific = [p.reason for p in decision.deliveries if p.reason != Reason.NO_REACHABLE_CHANNEL]
        assert decision.reason is (specific[0] if specific else decision.deliveries[0].reason)
        assert decision.reason is not None


# (f) ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases(kinds=(Kind.AUTOMATION,)))
def test_automation_to_a_do_not_contact_patient_sends_nothing(case):
    request, recipient, consent = case
    blocked = replace(recipient, do_not_contact=True)

    decision = decide(request, blocked, consent, NOW)

    assert decision.sends == ()


# further invariants ---------------------------------------------------------------------------


@EXTRA_SETTINGS
@given(cases(kinds=(Kind.BROADCAST, Kind.MANUAL, Kind.NOTIFICATION)))
def test_do_not_contact_only_changes_automations(case):
    request, recipient, consent = case

    with_dnc = decide(request, replace(recipient, do_not_contact=True), consent, NOW)
    without = decide(request, replace(recipient, do_not_contact=False), consent, NOW)

    assert with_dnc == without


@EXTRA_SETTINGS
@given(cases(kinds=(Kind.BROADCAST,)))
def test_broadcast_ignores_the_preferred_phone(case):
    request, recipient, consent = case

    with_preference = decide(request, recipient, consent, NOW)
    without = decide(request, replace(recipient, preferred_phone=None), consent, NOW)

    assert with_preference == without


@EXTRA_SETTINGS
@given(cases())
def test_sends_go_only_to_the_recipients_own_usable_addresses(case):
    request, recipient, consent = case
    phones = {phone.number: phone for phone in recipient.phones}
    for planned in _decide(case).sends:
        if planned.channel in (Channel.SMS, Channel.VOICE):
            phone = phones[planned.address]
            assert phone.valid
            if planned.channel == Channel.SMS:
                assert phone.line_type != LineType.LANDLINE
        elif planned.channel == Channel.EMAIL:
            assert planned.address in recipient.emails
            if request.kind != Kind.KEYWORD_REPLY:
                assert planned.address not in consent.email_bounced
        else:
            assert planned.channel == Channel.IN_APP


@EXTRA_SETTINGS
@given(cases())
def test_only_channels_with_content_are_planned(case):
    request, _, _ = case
    decision = _decide(case)

    assert {planned.channel for planned in decision.deliveries} <= request.content_channels
    assert len({planned.channel for planned in decision.deliveries}) == len(decision.deliveries)


@EXTRA_SETTINGS
@given(cases(kinds=(Kind.NOTIFICATION,)))
def test_notification_never_uses_a_channel_the_patient_opted_out_of(case):
    request, recipient, _ = case
    for planned in _decide(case).sends:
        if planned.channel in recipient.channel_opt_outs and planned.channel != Channel.IN_APP:
            assert not request.category.patient_can_disable


@EXTRA_SETTINGS
@given(cases(kinds=(Kind.NOTIFICATION,)))
def test_system_notices_reach_the_portal_whatever_the_patient_set(case):
    request, recipient, consent = case
    system = next(c for c in ALL_CATEGORIES if c.key == "system")
    notice = replace(request, category=system, content_channels=request.content_channels | {Channel.IN_APP})

    decision = decide(notice, recipient, consent, NOW)

    assert (Channel.IN_APP, None) in [(p.channel, p.address) for p in decision.sends]
