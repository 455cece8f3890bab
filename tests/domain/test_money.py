"""Tests for domain.money: parsing, formatting, fees and allocation (pure, no services)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.currencies import EXPONENTS
from domain.money import (
    MAX_MINOR_UNITS,
    SUPPORTED_CURRENCIES,
    CurrencyMismatch,
    FeePolicy,
    FeeSplit,
    InvalidAmount,
    InvalidFeePolicy,
    InvalidWeights,
    Money,
    MoneyError,
    UnknownCurrency,
    allocate,
    currency_exponent,
    format_minor,
    from_minor,
    normalize_currency,
    split_fees,
    to_minor,
)

FAST = settings(max_examples=150, deadline=None)
CURRENCIES = sorted(SUPPORTED_CURRENCIES)

# --------------------------------------------------------------------- currencies

ZERO_DECIMALS = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
THREE_DECIMALS = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
FOUR_DECIMALS = {"CLF", "UYW"}


def test_exponent_snapshot_of_every_supported_currency() -> None:
    # Stored amounts are minor units: an exponent changing under them (e.g. by bumping the
    # iso4217 package) would re-scale balances. This pins all of them: the lists above, and
    # 2 for everything else.
    for code in CURRENCIES:
        if code in ZERO_DECIMALS:
            expected = 0
        elif code in THREE_DECIMALS:
            expected = 3
        elif code in FOUR_DECIMALS:
            expected = 4
        else:
            expected = 2
        assert currency_exponent(code) == expected, code
    assert ZERO_DECIMALS | THREE_DECIMALS | FOUR_DECIMALS <= SUPPORTED_CURRENCIES


def test_supported_currencies_are_the_iso_list() -> None:
    assert isinstance(SUPPORTED_CURRENCIES, frozenset)
    assert 150 <= len(SUPPORTED_CURRENCIES) <= 190
    assert {"USD", "EUR", "GBP", "CHF", "CAD", "AUD", "INR", "BRL", "MXN", "CNY"} <= (
        SUPPORTED_CURRENCIES
    )
    # ISO "N.A." minor units: metals, bond units, SDR, testing, no-currency
    for code in ("XAU", "XAG", "XPT", "XPD", "XBA", "XDR", "XSU", "XUA", "XTS", "XXX"):
        assert code not in SUPPORTED_CURRENCIES
    assert all(len(c) == 3 and c.isupper() for c in SUPPORTED_CURRENCIES)
    assert set(EXPONENTS) == SUPPORTED_CURRENCIES


@pytest.mark.parametrize(("raw", "code"), [("usd", "USD"), ("USD", "USD"), ("jPy", "JPY")])
def test_normalize_currency(raw: str, code: str) -> None:
    assert normalize_currency(raw) == code


@pytest.mark.parametrize(
    "raw", ["", "US", "USDD", "ZZZ", " usd", "usd ", "XAU", "XXX", "\u0131sk", "U$D", 840, None]
)
def test_unknown_currency(raw: object) -> None:
    with pytest.raises(UnknownCurrency) as err:
        normalize_currency(raw)  # type: ignore[arg-type]
    assert err.value.code == "UNKNOWN_CURRENCY"
    assert isinstance(err.value, MoneyError)
    assert isinstance(err.value, ValueError)


def test_unknown_currency_everywhere() -> None:
    with pytest.raises(UnknownCurrency):
        to_minor("1", "ABC")
    with pytest.raises(UnknownCurrency):
        format_minor(1, "ABC")
    with pytest.raises(UnknownCurrency):
        currency_exponent("ABC")
    with pytest.raises(UnknownCurrency):
        Money(1, "ABC")
    with pytest.raises(UnknownCurrency):
        split_fees(100, "ABC", FeePolicy(0, 0))


# ---------------------------------------------------------------- parse / format


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("25", "USD", 2500),
        ("25.5", "USD", 2550),
        ("25.50", "usd", 2550),
        (25, "USD", 2500),
        (25.5, "USD", 2550),
        (25.0, "USD", 2500),
        (Decimal("25.50"), "USD", 2550),
        (Decimal("2.55E+1"), "USD", 2550),  # a Decimal is a value: its exponent form is fine
        ("25.500", "USD", 2550),  # trailing zeros carry no money
        ("0.01", "USD", 1),
        ("0025.50", "USD", 2550),
        ("2500", "JPY", 2500),
        (2500, "JPY", 2500),
        (2500.0, "JPY", 2500),  # a JSON 2500.0
        ("2500.00", "JPY", 2500),
        ("1.5", "KWD", 1500),
        ("1.500", "KWD", 1500),
        ("0.001", "KWD", 1),
        ("1.2345", "CLF", 12345),
        ("9999999999.99", "USD", MAX_MINOR_UNITS - 1),
        ("999999999999", "JPY", MAX_MINOR_UNITS - 1),
    ],
)
def test_to_minor_examples(amount: str | int | float | Decimal, currency: str, minor: int) -> None:
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (2550, "USD", "25.50"),
        (1, "USD", "0.01"),
        (0, "USD", "0.00"),
        (-300, "USD", "-3.00"),
        (2500, "JPY", "2500"),
        (0, "JPY", "0"),
        (1500, "KWD", "1.500"),
        (1, "KWD", "0.001"),
        (12345, "CLF", "1.2345"),
        (MAX_MINOR_UNITS - 1, "USD", "9999999999.99"),
        (10**40, "USD", "1" + "0" * 38 + ".00"),  # no exponent, no context rounding
    ],
)
def test_format_minor_examples(minor: int, currency: str, text: str) -> None:
    assert format_minor(minor, currency) == text
    assert str(from_minor(minor, currency)) == text


def test_from_minor_is_exact_decimal() -> None:
    d = from_minor(2550, "USD")
    assert d == Decimal("25.50")
    assert d.as_tuple().exponent == -2
    assert from_minor(2500, "JPY").as_tuple().exponent == 0


@pytest.mark.parametrize(
    ("amount", "currency", "why"),
    [
        ("25.505", "USD", "decimal places"),
        ("0.001", "USD", "decimal places"),
        ("0.5", "JPY", "decimal places"),
        ("1.0001", "KWD", "decimal places"),
        (25.505, "USD", "decimal places"),
        (0.1 + 0.2, "USD", "decimal places"),  # 0.30000000000000004
        (1e-7, "USD", "decimal places"),
        (Decimal("25.505"), "USD", "decimal places"),
        (Decimal("1E-1000000000"), "USD", "decimal places"),  # must not compute 10**1e9
        ("-1", "USD", "negative"),
        ("-0.01", "USD", "negative"),
        (-1, "USD", "negative"),
        (-1.5, "USD", "negative"),
        (Decimal("-1"), "USD", "negative"),
        ("0", "USD", "greater than zero"),
        ("0.00", "USD", "greater than zero"),
        (0, "USD", "greater than zero"),
        (0.0, "USD", "greater than zero"),
        (-0.0, "USD", "greater than zero"),
        (Decimal("-0"), "USD", "greater than zero"),
        (float("nan"), "USD", "finite"),
        (float("inf"), "USD", "finite"),
        (float("-inf"), "USD", "finite"),
        (Decimal("NaN"), "USD", "finite"),
        (Decimal("sNaN"), "USD", "finite"),
        (Decimal("Infinity"), "USD", "finite"),
        (Decimal("-Infinity"), "USD", "finite"),
        (True, "USD", "boolean"),
        (False, "USD", "boolean"),
        ("NaN", "USD", "plain decimal"),
        ("nan", "USD", "plain decimal"),
        ("Infinity", "USD", "plain decimal"),
        ("inf", "USD", "plain decimal"),
        ("1e3", "USD", "plain decimal"),  # exponent strings are rejected (documented)
        ("1E+3", "USD", "plain decimal"),
        ("2.5e1", "USD", "plain decimal"),
        ("", "USD", "plain decimal"),
        (" 25", "USD", "plain decimal"),
        ("25 ", "USD", "plain decimal"),
        ("25\n", "USD", "plain decimal"),
        ("+25", "USD", "plain decimal"),
        ("--1", "USD", "plain decimal"),
        ("25.", "USD", "plain decimal"),
        (".5", "USD", "plain decimal"),
        ("1,000.00", "USD", "plain decimal"),
        ("1_000", "USD", "plain decimal"),
        ("25,50", "USD", "plain decimal"),
        ("$25", "USD", "plain decimal"),
        ("abc", "USD", "plain decimal"),
        ("0x10", "USD", "plain decimal"),
        ("٢٥", "USD", "plain decimal"),  # Arabic-Indic digits, which Decimal() would accept
        ("1" * 41, "USD", "too long"),
        ("10000000000", "USD", "too large"),  # 10**12 cents
        ("1000000000000", "JPY", "too large"),
        (10**12, "JPY", "too large"),
        (10**100, "USD", "too large"),
        (1e16, "USD", "too large"),
        (Decimal("1E+1000000000"), "USD", "too large"),  # must not compute 10**1e9
        (Decimal("1." + "0" * 5000), "USD", "too many digits"),
        (Decimal("9" * 5000), "USD", "too many digits"),
        (None, "USD", "decimal string"),
        ([25], "USD", "decimal string"),
        (b"25", "USD", "decimal string"),
        (Fraction(1, 2), "USD", "decimal string"),
    ],
)
def test_to_minor_rejects(amount: object, currency: str, why: str) -> None:
    with pytest.raises(InvalidAmount, match=why) as err:
        to_minor(amount, currency)  # type: ignore[arg-type]
    assert err.value.code == "INVALID_AMOUNT"
    assert isinstance(err.value, MoneyError)
    assert err.value.details["currency"] == currency


def test_allow_zero() -> None:
    assert to_minor("0", "USD", allow_zero=True) == 0
    assert to_minor(0, "JPY", allow_zero=True) == 0
    assert to_minor(Decimal("0E-10"), "USD", allow_zero=True) == 0
    assert Money.parse("0.00", "usd", allow_zero=True) == Money(0, "USD")
    with pytest.raises(InvalidAmount):
        to_minor("-0.01", "USD", allow_zero=True)


@pytest.mark.parametrize("minor", [True, 1.5, "25", None, Decimal(1)])
def test_minor_units_must_be_int(minor: object) -> None:
    with pytest.raises(InvalidAmount):
        format_minor(minor, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money(minor, "USD")  # type: ignore[arg-type]


@FAST
@given(
    currency=st.sampled_from(CURRENCIES),
    minor=st.integers(min_value=1, max_value=MAX_MINOR_UNITS - 1),
)
def test_format_parse_round_trip(currency: str, minor: int) -> None:
    text = format_minor(minor, currency)
    assert to_minor(text, currency) == minor
    assert to_minor(from_minor(minor, currency), currency) == minor
    assert Money.parse(text, currency.lower()) == Money(minor, currency)
    exponent = currency_exponent(currency)
    if exponent:
        assert len(text.split(".")[1]) == exponent
    else:
        assert "." not in text


def test_round_trip_every_currency_edges() -> None:
    for currency in CURRENCIES:
        for minor in (1, 9, 10, 99, 100, 101, 123456789, MAX_MINOR_UNITS - 1):
            assert to_minor(format_minor(minor, currency), currency) == minor
        assert to_minor(format_minor(0, currency), currency, allow_zero=True) == 0


@FAST
@given(
    currency=st.sampled_from(CURRENCIES),
    amount=st.decimals(allow_nan=True, allow_infinity=True),
)
def test_to_minor_decimal_is_exact_or_rejected(currency: str, amount: Decimal) -> None:
    exponent = currency_exponent(currency)
    try:
        minor = to_minor(amount, currency, allow_zero=True)
    except InvalidAmount:
        if amount.is_finite():
            exact = Fraction(amount) * 10**exponent
            too_long = len(amount.as_tuple().digits) > 40
            assert exact < 0 or exact.denominator != 1 or exact >= MAX_MINOR_UNITS or too_long
        return
    assert Fraction(minor, 10**exponent) == Fraction(amount)
    assert 0 <= minor < MAX_MINOR_UNITS


@FAST
@given(amount=st.floats(allow_nan=True, allow_infinity=True))
def test_to_minor_float_is_exact_or_rejected(amount: float) -> None:
    try:
        minor = to_minor(amount, "USD", allow_zero=True)
    except InvalidAmount:
        return
    assert Decimal(str(amount)) * 100 == minor
    assert Fraction(minor, 100) == Fraction(Decimal(str(amount)))


# --------------------------------------------------------------------------- Money


def test_money_value_type() -> None:
    a = Money.parse("25.50", "usd")
    assert a == Money(2550, "USD")
    assert a.currency == "USD"
    assert a.decimal == Decimal("25.50")
    assert a.format() == "25.50"
    assert str(a) == "25.50 USD"
    b = Money(50, "USD")
    assert a + b == Money(2600, "USD")
    assert a - b == Money(2500, "USD")
    assert b - a == Money(-2500, "USD")
    assert -b == Money(-50, "USD")
    assert b < a and a > b and a >= a and b <= a
    assert Money.zero("JPY") == Money(0, "JPY")
    assert hash(Money(1, "usd")) == hash(Money(1, "USD"))
    with pytest.raises(AttributeError):
        a.minor = 1  # type: ignore[misc]


def test_money_mismatch() -> None:
    usd, eur = Money(100, "USD"), Money(100, "EUR")
    for op in (
        lambda: usd + eur,
        lambda: usd - eur,
        lambda: usd < eur,
        lambda: usd >= eur,
    ):
        with pytest.raises(CurrencyMismatch) as err:
            op()
        assert isinstance(err.value, MoneyError)
        assert err.value.code == "CURRENCY_MISMATCH"
    assert usd != eur
    with pytest.raises(TypeError):
        usd + 1  # type: ignore[operator]


def test_money_parse_rejects_like_to_minor() -> None:
    with pytest.raises(InvalidAmount):
        Money.parse("25.505", "USD")
    with pytest.raises(InvalidAmount):
        Money.parse("1.5", "JPY")


# ---------------------------------------------------------------------------- fees

CARD = FeePolicy(platform_fee_bps=1500, processing_fee_bps=290, processing_fee_fixed_minor=30)


def test_split_fees_example_usd() -> None:
    # $10.00: 15% = 150, 2.9% = 29 + 30 = 59, net = 791
    assert split_fees(1000, "usd", CARD) == FeeSplit(1000, 150, 59, 791, "USD")


def test_split_fees_rounds_each_fee_half_up() -> None:
    # $25.50: 15% = 382.5 -> 383; 2.9% = 73.95 -> 74 (+30 = 104); net = 2550 - 383 - 104
    assert split_fees(2550, "USD", CARD) == FeeSplit(2550, 383, 104, 2063, "USD")
    no_fixed = FeePolicy(1500, 0)
    assert split_fees(10, "USD", no_fixed).platform_fee == 2  # 1.5 -> 2 (half up)
    assert split_fees(3, "USD", no_fixed).platform_fee == 0  # 0.45 -> 0
    assert split_fees(1, "USD", FeePolicy(5000, 0)).platform_fee == 1  # 0.5 -> 1
    assert split_fees(1, "USD", FeePolicy(4999, 0)).platform_fee == 0  # 0.4999 -> 0


def test_split_fees_per_currency_fixed_fee() -> None:
    policy = FeePolicy(1500, 360, {"jpy": 40, "USD": 30})
    assert policy.processing_fee_fixed_minor == {"JPY": 40, "USD": 30}
    # ¥3000: 15% = 450, 3.6% = 108 + 40 = 148, net 2402
    assert split_fees(3000, "JPY", policy) == FeeSplit(3000, 450, 148, 2402, "JPY")
    with pytest.raises(InvalidFeePolicy, match="EUR"):
        split_fees(3000, "EUR", policy)
    kwd = split_fees(10_000, "KWD", FeePolicy(1500, 290, 30))  # 10.000 KWD
    assert kwd == FeeSplit(10_000, 1500, 320, 8180, "KWD")


def test_split_fees_caps_fees_at_gross() -> None:
    # 50c charge: processing 2.9% = 1.45 -> 1, +30 = 31; platform 15% = 7.5 -> 8
    assert split_fees(50, "USD", CARD) == FeeSplit(50, 8, 31, 11, "USD")
    # 20c: processing 1 + 30 = 31 > 20 -> capped to 20; platform gets what is left: 0
    assert split_fees(20, "USD", CARD) == FeeSplit(20, 0, 20, 0, "USD")
    # 100% + 100%: processing first
    assert split_fees(100, "USD", FeePolicy(10_000, 10_000)) == FeeSplit(100, 0, 100, 0, "USD")
    assert split_fees(0, "USD", CARD) == FeeSplit(0, 0, 0, 0, "USD")


@pytest.mark.parametrize("gross", [-1, MAX_MINOR_UNITS, True, 1.0, "100"])
def test_split_fees_rejects_bad_gross(gross: object) -> None:
    with pytest.raises(InvalidAmount):
        split_fees(gross, "USD", CARD)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"platform_fee_bps": -1, "processing_fee_bps": 0},
        {"platform_fee_bps": 10_001, "processing_fee_bps": 0},
        {"platform_fee_bps": 0, "processing_fee_bps": 1.5},
        {"platform_fee_bps": True, "processing_fee_bps": 0},
        {"platform_fee_bps": 0, "processing_fee_bps": 0, "processing_fee_fixed_minor": -1},
        {"platform_fee_bps": 0, "processing_fee_bps": 0, "processing_fee_fixed_minor": 0.3},
        {"platform_fee_bps": 0, "processing_fee_bps": 0, "processing_fee_fixed_minor": {"USD": -1}},
    ],
)
def test_fee_policy_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidFeePolicy) as err:
        FeePolicy(**kwargs)  # type: ignore[arg-type]
    assert err.value.code == "INVALID_FEE_POLICY"
    with pytest.raises(UnknownCurrency):
        FeePolicy(0, 0, {"ABC": 1})


def test_fee_policy_is_immutable_and_hashable() -> None:
    source = {"USD": 30}
    policy = FeePolicy(1500, 290, source)
    source["USD"] = 0
    assert policy.fixed_fee_for("usd") == 30
    assert hash(policy) == hash(FeePolicy(1500, 290, {"USD": 30}))
    assert policy == FeePolicy(1500, 290, {"usd": 30})


def _half_up(gross: int, bps: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 60
        return int((Decimal(gross) * bps / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@FAST
@given(
    gross=st.integers(min_value=1, max_value=10**11),
    platform_bps=st.integers(min_value=0, max_value=10_000),
    processing_bps=st.integers(min_value=0, max_value=10_000),
    fixed=st.integers(min_value=0, max_value=10**6),
    currency=st.sampled_from(["USD", "JPY", "KWD", "CLF", "EUR"]),
)
def test_split_fees_properties(
    gross: int, platform_bps: int, processing_bps: int, fixed: int, currency: str
) -> None:
    split = split_fees(gross, currency, FeePolicy(platform_bps, processing_bps, fixed))
    assert split.gross == gross
    assert split.currency == currency
    assert split.platform_fee + split.processing_fee + split.net == gross
    assert min(split.platform_fee, split.processing_fee, split.net) >= 0
    raw_processing = _half_up(gross, processing_bps) + fixed
    raw_platform = _half_up(gross, platform_bps)
    assert split.processing_fee == min(raw_processing, gross)
    assert split.platform_fee == min(raw_platform, gross - split.processing_fee)
    if raw_processing + raw_platform <= gross:  # uncapped: the documented rule exactly
        assert split.net == gross - raw_platform - raw_processing


# ------------------------------------------------------------------------- allocate


def test_allocate_examples() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(100, [1, 2]) == [33, 67]
    assert allocate(5, [1, 1, 1, 1, 1, 1]) == [1, 1, 1, 1, 1, 0]
    assert allocate(1000, [7000, 3000]) == [700, 300]
    assert allocate(1, [0, 1, 0]) == [0, 1, 0]
    assert allocate(0, [1, 2]) == [0, 0]
    assert allocate(10, [5]) == [10]


@pytest.mark.parametrize(
    ("total", "weights", "error"),
    [
        (10, [], InvalidWeights),
        (10, [0, 0], InvalidWeights),
        (10, [1, -1], InvalidWeights),
        (10, [1, 1.5], InvalidWeights),
        (10, [True, 1], InvalidWeights),
        (-1, [1], InvalidAmount),
        (1.0, [1], InvalidAmount),
        (True, [1], InvalidAmount),
    ],
)
def test_allocate_rejects(total: object, weights: list[object], error: type[Exception]) -> None:
    with pytest.raises(error):
        allocate(total, weights)  # type: ignore[arg-type]


@FAST
@given(
    total=st.integers(min_value=0, max_value=10**13),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20).filter(
        any
    ),
)
def test_allocate_properties(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, w in zip(parts, weights, strict=True):
        exact = Fraction(total * w, weight_sum)
        assert abs(part - exact) < 1
        assert part >= 0
        if w == 0:
            assert part == 0


@given(minor=st.integers(min_value=-(10**30), max_value=10**30),
       currency=st.sampled_from(["USD", "JPY", "KWD", "CLF", "EUR", "BHD", "XAF"]))
def test_format_minor_is_the_decimal_text(minor: int, currency: str) -> None:
    """The integer fast path says exactly what the exact Decimal says."""
    assert format_minor(minor, currency) == format(from_minor(minor, currency), "f")
