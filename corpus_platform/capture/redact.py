"""Best-effort removal of e-mail addresses and phone numbers at capture time.

Why at capture: what is never written needs no deletion later. These are heuristics, not a PII
guarantee: they favour missing an odd format over mangling dates, versions, IPs and ids.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
# +44 20 7946 0958, (555) 123-4567, 555-123-4567, +1 555.123.4567, +4915112345678. A separator or a
# leading + is required, so bare numbers (order ids, timestamps) and dates (2024-05-01) are left alone.
PHONE = re.compile(
    r"(?<![\w+.])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?|\d{2,4}[ .-])(?:\d{2,4}[ .-])?\d{3,4}[ .-]?\d{3,4}(?!\w|\.\d)"
    r"|(?<![\w+])\+\d{8,15}(?!\w)"
)


IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _phone(m: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in m.group(0))
    if not 7 <= digits <= 15 or IPV4.fullmatch(m.group(0)):
        return m.group(0)
    return "[PHONE]"


def redact(text: str | None) -> str | None:
    """`text` with e-mail addresses replaced by [EMAIL] and phone numbers by [PHONE]."""
    if not text:
        return text
    return PHONE.sub(_phone, EMAIL.sub("[EMAIL]", text))
