"""ISO 4217 currencies and their minor-unit exponents (the only currency data the money rules use).

Source: ISO 4217 "List One" (current currency & funds), as shipped by the PyPI package
``iso4217`` (public domain; it bundles the official list-one XML; its version encodes the
list's publication date, e.g. 1.16.20260101 = the list published 2026-01-01). It is used
instead of a hand-kept table because it carries the official ``CcyMnrUnts`` column and is
re-released on every ISO amendment. Not used: ``pycountry`` (no minor units) and
``babel.numbers.get_currency_precision`` (CLDR display digits: babel 2.18 gives 0 where ISO
says 2 for AFN ALL IRR KPW LAK LBP MGA MMK RSD SOS SYP YER, and 0 where ISO says 3 for IQD).

Supported = every code in List One whose minor unit is a number (0, 2, 3 or 4 decimals), so
the funds codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW) are in, while the codes whose
minor unit is "N.A." (precious metals XAU XAG XPD XPT, bond-market units XBA-XBD, XDR, XSU,
XUA, the testing code XTS and "no currency" XXX) are out.

Stored amounts are integers of minor units, so an exponent must never change under stored
data: pin the package to an exact version, and ``tests/domain/test_money.py`` snapshots every
exponent (a bump that changes one fails the tests instead of re-scaling balances).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import iso4217
from iso4217 import Currency

__all__ = ["EXPONENTS", "ISO4217_PUBLISHED"]


def _load() -> dict[str, int]:
    table: dict[str, int] = {}
    for ccy in Currency:
        exponent = ccy.exponent
        if exponent is None:  # "N.A.": metals, bond units, SDR, XTS, XXX
            continue
        table[ccy.code] = exponent
    return dict(sorted(table.items()))


#: ISO code -> number of decimals of its minor unit (USD 2, JPY 0, KWD 3, CLF 4). Read-only.
EXPONENTS: Mapping[str, int] = MappingProxyType(_load())

#: Publication date of the ISO 4217 list the table comes from (YYYY-MM-DD).
ISO4217_PUBLISHED: str = iso4217.__published__.isoformat()
