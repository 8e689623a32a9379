"""``e164()`` reads a North American number already in E.164 without a parse: the answer is phonenumbers'."""

import random

import phonenumbers
import pytest

from consentry.errors import InvalidInput
from consentry.patients.addresses import e164


def _library(raw: str, region: str) -> str | None:
    """phonenumbers' E.164 form of ``raw``, or None where it is not a possible number."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _samples() -> list[str]:
    rng = random.Random(15)
    every_area_code = [
        f"+1{area}{exchange:03d}{line:04d}"
        for area in range(200, 1000)
        for exchange, line in ((0, 0), (211, 1), (555, 100), (999, 9999))
    ]
    return every_area_code + [f"+1{rng.randrange(2_000_000_000, 10_000_000_000)}" for _ in range(3000)]


@pytest.mark.parametrize("region", ["US", "CA", "GB", "MX"])
def test_a_north_american_e164_sender_reads_as_phonenumbers_reads_it(region):
    differ = [raw for raw in _samples() if e164(raw, region=region) != _library(raw, region)]
    assert not differ, differ[:5]


@pytest.mark.parametrize(
    "raw",
    [
        "+10123456789",
        "+11234567890",
        "+1212555012",
        "+121255501234",
        "+1 212 555 0123",
        "(212) 555-0123",
        "+442079460958",
    ],
)
def test_other_shapes_take_the_full_parse(raw):
    # Not the shortcut's shape: the library decides (a 0 or 1 after +1, a wrong length, spaces, other countries).
    expected = _library(raw, "US")
    if expected is None:
        with pytest.raises(InvalidInput):
            e164(raw, region="US")
    else:
        assert e164(raw, region="US") == expected


def test_what_is_not_a_number_is_refused():
    for raw in ["", "STOP", "+1", "+1abcdefghij"]:
        with pytest.raises(InvalidInput):
            e164(raw)
