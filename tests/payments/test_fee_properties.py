"""Property tests: fee splits and currency rounding, as the ledger books them."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.money import MAX_MINOR_UNITS, FeePolicy, currency_exponent, format_minor, split_fees
from domain.payments import ledger
from domain.payments.escrow import capture_amount

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD", "BHD", "CLF", "GBP", "ISK"])
AMOUNTS = st.integers(min_value=0, max_value=MAX_MINOR_UNITS - 1)
BPS = st.integers(min_value=0, max_value=10_000)
FIXED = st.integers(min_value=0, max_value=10_000)


def _half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


@settings(max_examples=400, deadline=None)
@given(gross=AMOUNTS, currency=CURRENCIES, platform=BPS, processing=BPS, fixed=FIXED)
def test_split_is_exact_non_negative_and_rounded_half_up(
        gross: int, currency: str, platform: int, processing: int, fixed: int) -> None:
    split = split_fees(gross, currency, FeePolicy(platform, processing, fixed))
    assert split.gross == split.platform_fee + split.processing_fee + split.net == gross
    assert min(split.platform_fee, split.processing_fee, split.net) >= 0
    want_processing = min(gross, _half_up(Fraction(gross * processing, 10_000)) + fixed)
    assert split.processing_fee == want_processing
    assert split.platform_fee == min(_half_up(Fraction(gross * platform, 10_000)),
                                     gross - want_processing)


@settings(max_examples=300, deadline=None)
@given(authorized=st.integers(1, 10**9), agreed_drop=st.integers(0, 10**9),
       refund=st.integers(0, 10**9), refund_after=st.integers(0, 10**9), currency=CURRENCIES,
       platform=BPS, processing=BPS, fixed=FIXED)
def test_a_whole_order_cycle_books_balanced_postings_that_empty_the_escrow(
        authorized: int, agreed_drop: int, refund: int, refund_after: int, currency: str,
        platform: int, processing: int, fixed: int) -> None:
    agreed = max(1, authorized - agreed_drop)
    captured = capture_amount(agreed, authorized, min(refund, agreed))
    refunded = min(refund_after, captured)
    split = split_fees(captured - refunded, currency, FeePolicy(platform, processing, fixed))
    postings = [ledger.capture_legs(captured), ledger.refund_legs(refunded),
                ledger.settle_legs(split), ledger.payout_legs(split.net)]
    balances: dict[ledger.Account, int] = {}
    for legs in postings:
        for account, amount in ledger.balanced_legs(legs):  # raises if a posting is unbalanced
            balances[account] = balances.get(account, 0) + amount
    assert sum(balances.values()) == 0
    assert balances.get(ledger.Account.ESCROW, 0) == 0
    assert balances.get(ledger.Account.PROVIDER_PAYABLE, 0) == 0
    assert -balances.get(ledger.Account.CREATOR_FUNDING, 0) == captured - refunded
    assert captured <= min(agreed, authorized)


@given(minor=st.integers(-(10**12), 10**12), currency=CURRENCIES)
def test_amounts_print_with_the_currency_exponent(minor: int, currency: str) -> None:
    text = format_minor(minor, currency)
    exponent = currency_exponent(currency)
    assert ("." in text) == (exponent > 0)
    if exponent:
        assert len(text.split(".")[1]) == exponent
    assert Fraction(text.replace("-", "")) * 10**exponent == abs(minor)
