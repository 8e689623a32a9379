"""SMS segments in GSM-7 and UCS-2, and the HELP reply that always fits in one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from consentry import sms


@pytest.mark.parametrize(
    "text, gsm, units, segments",
    [
        ("a" * 160, True, 160, 1),
        ("a" * 161, True, 161, 2),  # 153 septets a part once it is split
        ("a" * 306, True, 306, 2),
        ("a" * 307, True, 307, 3),
        ("€" * 80, True, 160, 1),  # an extension character takes two septets
        ("€" * 81, True, 162, 2),
        ("Clínica " + "a" * 62, False, 70, 1),  # í is not GSM-7: UCS-2, 70 a segment
        ("Clínica " + "a" * 63, False, 71, 2),
        ("😀" * 35, False, 70, 1),  # beyond the BMP: two UTF-16 units each
        ("😀" * 36, False, 72, 2),
        ("Ñandú? ¿Sí?", False, 11, 1),
        ("Niño, ¿cómo está?", False, 17, 1),  # ó and á are not GSM-7
        ("Niño, ¿qué tal? àèìòù", True, 21, 1),  # é, à, è, ì, ò, ù, ñ and ¿ are
        ("Nino à è ì ò ù ñ ü ¿¡", True, 21, 1),
    ],
)
def test_segments_are_counted_in_the_texts_encoding(text, gsm, units, segments):
    assert sms.is_gsm7(text) is gsm
    assert sms.units(text) == units
    assert sms.segments(text) == segments


def _practice(name: str, phone: str = "+14155550199"):
    return SimpleNamespace(name=name, contact_phone=phone, texting_number="+14155550100")


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize(
    "name",
    [
        "Oak Clinic",
        "Maple Street Pediatrics and Family Medicine of Greater San Francisco Bay Area",
        "Clínica Pediátrica San José",  # UCS-2: 70 a segment
        "Clínica Pediátrica Integral de la Familia y el Niño de San José del Valle",
        "🦷 Smile Dental",
        "A" * 200,
    ],
)
def test_the_help_reply_fits_one_segment_and_says_who_how_to_reach_and_how_to_stop(name, language):
    from consentry.conversations.inbound import help_reply

    reply = help_reply(_practice(name), language)
    assert sms.fits_one_segment(reply), (sms.units(reply), reply)
    assert "+14155550199" in reply
    assert ("STOP" if language == "en" else "PARAR") in reply
    assert reply.startswith(name[:6])  # the practice's name, cut only when nothing else would fit


def test_the_fullest_help_reply_is_sent_when_it_fits():
    from consentry.conversations.inbound import help_reply

    assert help_reply(_practice("Oak Clinic")) == (
        "Oak Clinic: for help call +14155550199. Msg & data rates may apply. Reply STOP to opt out."
    )
