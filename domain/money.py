"""Money rules: integer minor units + ISO 4217 code, decimal strings at the edges, no floats.

Representation
    An amount is an ``int`` of minor units plus an upper-case ISO 4217 code: 2550 USD is
    $25.50, 2500 JPY is ¥2500, 1500 KWD is 1.500 KWD. The number of decimals of each
    currency (its exponent) comes from ISO 4217 List One (see ``domain.currencies``).

Input (``to_minor`` / ``Money.parse``), one rule for every type:
    * ``str``: plain ASCII decimal only: ``DIGITS`` or ``DIGITS.DIGITS`` ("25", "25.5",
      "0.05"). Rejected: sign ("-1", "+1"), exponent ("1e3", "1E+3"), whitespace, "_",
      ",", ".5", "5.", non-ASCII digits, "NaN", "Infinity", more than 40 characters.
      Exponent strings are rejected because an API client never needs them and they are
      an easy way to smuggle huge or tiny numbers past a quick look.
    * ``int``: a number of MAJOR units (25 USD -> 2500). ``bool`` is not a number.
    * ``float`` (what a JSON parser gives for 25.0 / 25.5): converted with
      ``Decimal(str(x))``, then treated like a Decimal; NaN and +-inf are rejected. So
      25.5 is accepted, 0.1 + 0.2 (= 0.30000000000000004) is rejected.
    * ``Decimal``: its exact value (any exponent form is fine, it is a value, not text);
      NaN, sNaN, +-inf and more than 40 coefficient digits are rejected.
    Whatever the type, the VALUE must be a whole number of minor units: "25.505" USD and
    "0.5" JPY are rejected, while "25.500" USD and 2500.0 JPY are accepted (trailing zeros
    carry no money). Then: negative -> rejected; zero -> rejected unless ``allow_zero``;
    ``>= MAX_MINOR_UNITS`` (10**12 minor units) -> rejected. All rejections raise
    ``InvalidAmount``; an unknown currency raises ``UnknownCurrency``. No arithmetic here
    depends on the decimal context: it is done on integers.

Output
    ``format_minor`` gives a plain decimal string with exactly the currency's decimals and
    no exponent, thousands separator or symbol ("25.50", "2500", "1.500", "-3.00").

Fees (``split_fees``) -- THE rounding rule
    Each fee is computed on the gross amount in exact rational arithmetic and rounded
    half-up (``ROUND_HALF_UP``: .5 goes away from zero) to a whole minor unit of the
    currency, independently of the other fee:
        platform_fee   = round_half_up(gross * platform_fee_bps / 10_000)
        processing_fee = round_half_up(gross * processing_fee_bps / 10_000) + fixed_minor
        net            = gross - platform_fee - processing_fee      (the remainder)
    so ``gross == platform_fee + processing_fee + net`` exactly. Fees are then capped so
    that nothing is negative: the processing fee (an external cost owed to the card
    processor) is capped at ``gross`` first, and the platform fee at what is left; so
    ``net >= 0`` always, and ``net == 0`` when fees would exceed the gross.

Splits (``allocate``)
    Largest-remainder (Hamilton) method: each part gets the floor of its exact share, and
    the minor units left over go one each to the parts with the largest remainders (ties:
    the earlier part). Parts sum exactly to the total; each is within 1 of its exact share.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.currencies import EXPONENTS

__all__ = [
    "BPS_DENOMINATOR",
    "MAX_MINOR_UNITS",
    "SUPPORTED_CURRENCIES",
    "ZERO_ENDING_CURRENCIES",
    "CurrencyMismatch",
    "FeePolicy",
    "FeeSplit",
    "InvalidAmount",
    "InvalidFeePolicy",
    "InvalidWeights",
    "Money",
    "MoneyError",
    "UnknownCurrency",
    "allocate",
    "check_chargeable",
    "currency_exponent",
    "format_minor",
    "from_minor",
    "normalize_currency",
    "split_fees",
    "to_minor",
]

#: Exclusive upper bound of an accepted amount, in minor units (10**12: $10bn, ¥1tn).
MAX_MINOR_UNITS = 10**12
#: 1 basis point = 1/10_000 (1500 bps = 15%).
BPS_DENOMINATOR = 10_000

_MAX_AMOUNT_TEXT = 40
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Any exponent above this makes a non-zero amount >= MAX_MINOR_UNITS; checked before 10**e.
_MAX_SCALE = len(str(MAX_MINOR_UNITS))


# --------------------------------------------------------------------------- errors


class MoneyError(ValueError):
    """Base of the money errors: ``code`` (machine), ``message`` (human), ``details``."""

    code = "MONEY_ERROR"

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        if code is not None:
            self.code = code


class UnknownCurrency(MoneyError):
    code = "UNKNOWN_CURRENCY"


class InvalidAmount(MoneyError):
    code = "INVALID_AMOUNT"


class CurrencyMismatch(MoneyError):
    code = "CURRENCY_MISMATCH"


class InvalidFeePolicy(MoneyError):
    code = "INVALID_FEE_POLICY"


class InvalidWeights(MoneyError):
    code = "INVALID_WEIGHTS"


# ----------------------------------------------------------------------- currencies

#: Every ISO 4217 List One code with a numeric minor unit (see ``domain.currencies``).
SUPPORTED_CURRENCIES: frozenset[str] = frozenset(EXPONENTS)


def normalize_currency(code: str) -> str:
    """``"usd"`` -> ``"USD"``. Exactly three ASCII letters (no trimming), else UnknownCurrency."""
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise UnknownCurrency(f"unknown currency: {code!r}", details={"currency": repr(code)})
    upper = code.upper()
    if upper not in EXPONENTS:
        raise UnknownCurrency(f"unknown currency: {code!r}", details={"currency": code})
    return upper


def currency_exponent(currency: str) -> int:
    """Decimals of the currency's minor unit: USD 2, JPY 0, KWD 3, CLF 4."""
    return EXPONENTS[normalize_currency(currency)]


# --------------------------------------------------------------------------- amounts


def _invalid(message: str, amount: object, currency: str) -> InvalidAmount:
    return InvalidAmount(message, details={"amount": repr(amount)[:60], "currency": currency})


def _decimal_to_minor(value: Decimal, exponent: int, amount: object, currency: str) -> int:
    """Exact value * 10**exponent as an int, using integers only (no decimal context)."""
    if not value.is_finite():
        raise _invalid("amount must be a finite number", amount, currency)
    sign, digits, dec_exp = value.as_tuple()
    assert isinstance(dec_exp, int)  # finite
    if len(digits) > _MAX_AMOUNT_TEXT:  # also keeps int() below clear of its digit limit
        raise _invalid("amount has too many digits", amount, currency)
    coefficient = int("".join(map(str, digits)))
    if coefficient == 0:
        return 0
    if sign:
        raise _invalid("amount must not be negative", amount, currency)
    scale = dec_exp + exponent
    if scale >= 0:
        if scale > _MAX_SCALE:
            raise _invalid("amount is too large", amount, currency)
        factor: int = 10**scale
        return coefficient * factor
    if -scale > len(digits):  # coefficient < 10**-scale, and it is not 0
        raise _too_many_decimals(amount, currency, exponent)
    divisor: int = 10**-scale
    minor, rest = divmod(coefficient, divisor)
    if rest:
        raise _too_many_decimals(amount, currency, exponent)
    return minor


def _too_many_decimals(amount: object, currency: str, exponent: int) -> InvalidAmount:
    return _invalid(f"{currency} allows at most {exponent} decimal places", amount, currency)


def to_minor(
    amount: str | int | float | Decimal, currency: str, *, allow_zero: bool = False
) -> int:
    """Parse an amount in major units to an int of minor units ("25.50" USD -> 2550).

    See the module docstring for the exact input rules. Raises InvalidAmount or
    UnknownCurrency.
    """
    code = normalize_currency(currency)
    exponent = EXPONENTS[code]
    minor: int
    if isinstance(amount, bool):
        raise _invalid("amount must be a number, not a boolean", amount, code)
    if isinstance(amount, int):
        if amount < 0:
            raise _invalid("amount must not be negative", amount, code)
        if amount >= MAX_MINOR_UNITS:  # cheap guard before multiplying a huge int
            raise _invalid("amount is too large", amount, code)
        minor = amount * 10**exponent
    elif isinstance(amount, str):
        if len(amount) > _MAX_AMOUNT_TEXT:
            raise _invalid("amount is too long", amount, code)
        if not _PLAIN_DECIMAL.fullmatch(amount):
            if amount.startswith("-") and _PLAIN_DECIMAL.fullmatch(amount[1:]):
                raise _invalid("amount must not be negative", amount, code)
            raise _invalid(
                "amount must be a plain decimal string such as '25' or '25.50'", amount, code
            )
        minor = _decimal_to_minor(Decimal(amount), exponent, amount, code)
    elif isinstance(amount, float):
        if not math.isfinite(amount):
            raise _invalid("amount must be a finite number", amount, code)
        minor = _decimal_to_minor(Decimal(str(amount)), exponent, amount, code)
    elif isinstance(amount, Decimal):
        minor = _decimal_to_minor(amount, exponent, amount, code)
    else:
        raise _invalid(
            f"amount must be a decimal string, not {type(amount).__name__}", amount, code
        )
    if minor == 0 and not allow_zero:
        raise _invalid("amount must be greater than zero", amount, code)
    if minor >= MAX_MINOR_UNITS:
        raise _invalid("amount is too large", amount, code)
    return minor


def _check_minor(minor: object) -> int:
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise InvalidAmount(
            f"minor units must be an int, not {type(minor).__name__}",
            details={"amount": repr(minor)[:60]},
        )
    return minor


def from_minor(minor: int, currency: str) -> Decimal:
    """2550 USD -> Decimal("25.50") (exactly the currency's decimals; negatives allowed)."""
    exponent = currency_exponent(currency)
    value = _check_minor(minor)
    digits = tuple(int(d) for d in str(abs(value)))
    return Decimal((1 if value < 0 else 0, digits, -exponent))


def format_minor(minor: int, currency: str) -> str:
    """2550 USD -> "25.50"; 2500 JPY -> "2500"; 1500 KWD -> "1.500"; -300 USD -> "-3.00".

    Integer arithmetic, the same text as ``format(from_minor(...), "f")`` (a test holds them
    equal): every order in a list or search is formatted, and the Decimal route cost 1.5 us."""
    exponent = currency_exponent(currency)
    value = _check_minor(minor)
    if exponent == 0:
        return str(value)
    whole, fraction = divmod(abs(value), 10 ** exponent)
    return f"{'-' if value < 0 else ''}{whole}.{fraction:0{exponent}d}"


# ----------------------------------------------------------------------------- Money


@dataclass(frozen=True)
class Money:
    """An amount: ``minor`` units of ``currency`` (normalised to upper case on creation).

    A value type: it may be negative or zero (ledger deltas); the API-input rules
    (positive, bounded, no extra decimals) are applied by ``Money.parse`` / ``to_minor``.
    Arithmetic and ordering only between the same currency (else CurrencyMismatch).
    """

    minor: int
    currency: str

    def __post_init__(self) -> None:
        _check_minor(self.minor)
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def parse(
        cls, amount: str | int | float | Decimal, currency: str, *, allow_zero: bool = False
    ) -> Money:
        return cls(to_minor(amount, currency, allow_zero=allow_zero), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @property
    def decimal(self) -> Decimal:
        return from_minor(self.minor, self.currency)

    def format(self) -> str:
        return format_minor(self.minor, self.currency)

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"

    def _same(self, other: Money, op: str) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot {op} {other.currency} and {self.currency}",
                details={"currencies": [self.currency, other.currency]},
            )

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "add")
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "subtract")
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor >= other.minor


# ------------------------------------------------------------------------------ fees


def _check_bps(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BPS_DENOMINATOR:
        raise InvalidFeePolicy(
            f"{name} must be an int in [0, {BPS_DENOMINATOR}]", details={name: repr(value)}
        )


def _check_fixed(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidFeePolicy(
            "processing_fee_fixed_minor must be a non-negative int",
            details={"processing_fee_fixed_minor": repr(value)},
        )


@dataclass(frozen=True)
class FeePolicy:
    """Fees in basis points of the gross (1500 = 15%) plus a fixed processing fee.

    ``processing_fee_fixed_minor`` is either one int of minor units used for every
    currency as-is (30 = $0.30, ¥30, 0.030 KWD), or a dict currency -> minor units; with a
    dict, splitting in a currency it does not list raises InvalidFeePolicy (no silent 0).
    Example, 15% platform + card-style 2.9% + 30c:
    ``FeePolicy(1500, 290, {"USD": 30, "EUR": 25, "JPY": 40})``.
    """

    platform_fee_bps: int
    processing_fee_bps: int
    processing_fee_fixed_minor: dict[str, int] | int = 0

    def __post_init__(self) -> None:
        _check_bps("platform_fee_bps", self.platform_fee_bps)
        _check_bps("processing_fee_bps", self.processing_fee_bps)
        fixed = self.processing_fee_fixed_minor
        if isinstance(fixed, dict):
            normalized: dict[str, int] = {}
            for ccy, value in fixed.items():
                _check_fixed(value)
                normalized[normalize_currency(ccy)] = value
            # a private copy: the caller's dict can't change a policy after the fact
            object.__setattr__(self, "processing_fee_fixed_minor", normalized)
        else:
            _check_fixed(fixed)

    def __hash__(self) -> int:
        fixed = self.processing_fee_fixed_minor
        key = frozenset(fixed.items()) if isinstance(fixed, dict) else fixed
        return hash((self.platform_fee_bps, self.processing_fee_bps, key))

    def fixed_fee_for(self, currency: str) -> int:
        code = normalize_currency(currency)
        fixed = self.processing_fee_fixed_minor
        if not isinstance(fixed, dict):
            return fixed
        if code not in fixed:
            raise InvalidFeePolicy(
                f"the fee policy has no fixed processing fee for {code}", details={"currency": code}
            )
        return fixed[code]


@dataclass(frozen=True)
class FeeSplit:
    """``gross == platform_fee + processing_fee + net``; all in minor units, all >= 0."""

    gross: int
    platform_fee: int
    processing_fee: int
    net: int
    currency: str


def _bps_half_up(amount: int, bps: int) -> int:
    """round_half_up(amount * bps / 10_000) for amount, bps >= 0, in integers."""
    return (2 * amount * bps + BPS_DENOMINATOR) // (2 * BPS_DENOMINATOR)


def split_fees(gross_minor: int, currency: str, policy: FeePolicy) -> FeeSplit:
    """Split a gross charge into platform fee, processing fee and the provider's net.

    Rounding: each fee half-up to a whole minor unit, net is the remainder; fees capped so
    net >= 0 (processing fee first). See the module docstring. ``gross_minor`` must be an
    int in [0, MAX_MINOR_UNITS).
    """
    code = normalize_currency(currency)
    gross = _check_minor(gross_minor)
    if not 0 <= gross < MAX_MINOR_UNITS:
        raise InvalidAmount(
            f"gross must be in [0, {MAX_MINOR_UNITS}) minor units",
            details={"amount": repr(gross_minor), "currency": code},
        )
    processing = _bps_half_up(gross, policy.processing_fee_bps) + policy.fixed_fee_for(code)
    processing = min(processing, gross)
    platform = min(_bps_half_up(gross, policy.platform_fee_bps), gross - processing)
    return FeeSplit(
        gross=gross,
        platform_fee=platform,
        processing_fee=processing,
        net=gross - platform - processing,
        currency=code,
    )


# ------------------------------------------------------------------------ chargeable

#: Three-decimal currencies Stripe charges only in multiples of 10 minor units (the last
#: digit must be 0): an amount like 12.345 KWD is refused at the processor, so it is refused
#: when the order is made rather than when the creator's card is held.
ZERO_ENDING_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def check_chargeable(minor: int, currency: str) -> int:
    """``minor`` if the card processor can charge it in ``currency``, else InvalidAmount."""
    code = normalize_currency(currency)
    if code in ZERO_ENDING_CURRENCIES and minor % 10:
        raise InvalidAmount(
            f"{code} amounts must end in 0: the card processor charges {code} in steps of "
            f"{format_minor(10, code)}",
            details={"amount": format_minor(minor, code), "currency": code},
            code="AMOUNT_NOT_CHARGEABLE",
        )
    return minor


# -------------------------------------------------------------------------- allocate


def allocate(total_minor: int, weights: list[int]) -> list[int]:
    """Split ``total_minor`` (>= 0) by integer ``weights`` (>= 0, not all 0), largest remainder.

    ``allocate(100, [1, 1, 1]) == [34, 33, 33]``; the parts sum to ``total_minor`` exactly,
    each part is floor or ceil of its exact share, a 0 weight always gets 0.
    """
    total = _check_minor(total_minor)
    if total < 0:
        raise InvalidAmount("total must not be negative", details={"amount": repr(total)})
    if not weights:
        raise InvalidWeights("weights must not be empty")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise InvalidWeights(
                "weights must be non-negative ints", details={"weights": repr(weights)[:200]}
            )
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise InvalidWeights("weights must not all be zero")
    parts: list[int] = []
    remainders: list[int] = []
    for w in weights:
        q, r = divmod(total * w, weight_sum)
        parts.append(q)
        remainders.append(r)
    left = total - sum(parts)  # 0 <= left < len(weights)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[i] += 1
    return parts
