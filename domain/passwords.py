"""Password hashing with bcrypt (salted; cost 12 by default, tunable only upwards)."""

from __future__ import annotations

import bcrypt

BCRYPT_ROUNDS = 12
# bcrypt only reads the first 72 bytes; longer inputs are refused rather than silently truncated.
MAX_PASSWORD_BYTES = 72


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise ValueError("password longer than 72 bytes")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=max(rounds, BCRYPT_ROUNDS))).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(raw, password_hash.encode("ascii"))
    except ValueError:  # a malformed stored hash never authenticates
        return False
