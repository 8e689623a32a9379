"""How many SMS segments a text takes: GSM-7 when every character is in the GSM 03.38 alphabet,
else UCS-2. One segment holds 160 GSM-7 septets (a character of the extension table takes two) or
70 UCS-2 code units (a character beyond the BMP, such as an emoji, takes two)."""

from __future__ import annotations

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM_SEGMENT, GSM_PART = 160, 153
UCS2_SEGMENT, UCS2_PART = 70, 67


def is_gsm7(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENSION for c in text)


def units(text: str) -> int:
    """The text's length in its encoding's units: septets for GSM-7, UTF-16 code units for UCS-2."""
    if is_gsm7(text):
        return sum(2 if c in GSM_EXTENSION else 1 for c in text)
    return len(text.encode("utf-16-le")) // 2


def segments(text: str) -> int:
    """How many SMS segments the text is sent as."""
    single, part = (GSM_SEGMENT, GSM_PART) if is_gsm7(text) else (UCS2_SEGMENT, UCS2_PART)
    n = units(text)
    return 1 if n <= single else -(-n // part)


def fits_one_segment(text: str) -> bool:
    return segments(text) == 1
