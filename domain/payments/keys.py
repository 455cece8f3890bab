"""Deterministic idempotency keys: one per order and step, so a retried step (a task redelivered
after a crash, a client retrying a request) repeats the SAME processor call, and the processor
answers it with its first answer instead of moving money twice.

A step that may legitimately happen more than once carries its sequence number from the
database (hold generation, refund number), so the n-th hold or refund is still one key.
The payment method is part of a hold's key: a creator retrying with another card after a
decline must get a fresh authorisation, not the replayed decline.
"""

from __future__ import annotations

import uuid

PREFIX = "taplive"


def customer(user_id: uuid.UUID) -> str:
    return f"{PREFIX}/user/{user_id}/customer"


def attach(user_id: uuid.UUID, payment_method_id: str) -> str:
    return f"{PREFIX}/user/{user_id}/attach/{payment_method_id}"


def hold(order_id: uuid.UUID, generation: int, payment_method_id: str) -> str:
    return f"{PREFIX}/order/{order_id}/hold/{generation}/{payment_method_id}"


def capture(order_id: uuid.UUID, intent_id: str) -> str:
    return f"{PREFIX}/order/{order_id}/capture/{intent_id}"


def cancel(order_id: uuid.UUID, intent_id: str) -> str:
    return f"{PREFIX}/order/{order_id}/cancel/{intent_id}"


def refund(order_id: uuid.UUID, number: int) -> str:
    return f"{PREFIX}/order/{order_id}/refund/{number}"


def transfer(order_id: uuid.UUID) -> str:
    return f"{PREFIX}/order/{order_id}/transfer"


def cancel_orphan(intent_id: str) -> str:
    return f"{PREFIX}/intent/{intent_id}/cancel-orphan"


def connect_account(user_id: uuid.UUID) -> str:
    return f"{PREFIX}/user/{user_id}/connect-account"
