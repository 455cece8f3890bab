"""factory_boy factories with named traits; the session is the current test's."""

from __future__ import annotations

import itertools
from typing import Any

import factory
from sqlalchemy.orm import Session

from core.enums import OrderStatus, UserRole, VerificationStatus
from db.models import Order, User

_session: Session | None = None
_counter = itertools.count()
# A real bcrypt hash of "correct horse battery staple", computed once (hashing is slow on purpose).
PASSWORD = "correct horse battery staple"
_PASSWORD_HASH: str | None = None


def bind(session: Session | None) -> None:
    global _session
    _session = session


def _current_session() -> Session:
    if _session is None:
        raise RuntimeError("factories used outside a test with a database session")
    return _session


def password_hash() -> str:
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        from domain.passwords import hash_password

        _PASSWORD_HASH = hash_password(PASSWORD)
    return _PASSWORD_HASH


class _Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _current_session
        # Commit (a savepoint release inside the test's outer transaction): the request's own
        # unit of work rolls back on 4xx and closes its session, which must not take the
        # test's fixtures with it.
        sqlalchemy_session_persistence = "commit"


class UserFactory(_Base):
    class Meta:
        model = User

    username = factory.LazyFunction(lambda: f"user{next(_counter)}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")
    password_hash = factory.LazyFunction(password_hash)
    role = UserRole.CREATOR
    verification_status = VerificationStatus.PENDING
    profile = factory.LazyFunction(dict)
    is_premium = False
    token_generation = 0

    class Params:
        provider = factory.Trait(role=UserRole.PROVIDER)
        verified = factory.Trait(verification_status=VerificationStatus.VERIFIED)
        admin = factory.Trait(role=UserRole.ADMIN,
                              verification_status=VerificationStatus.VERIFIED)
        both = factory.Trait(role=UserRole.BOTH)
        premium = factory.Trait(is_premium=True)


class OrderFactory(_Base):
    class Meta:
        model = Order

    title = factory.Sequence(lambda n: f"Live stream #{n}")
    description = "Stream the harbour fireworks"
    creator = factory.SubFactory(UserFactory)
    creator_id = factory.LazyAttribute(lambda o: o.creator.id)
    latitude = 51.5074
    longitude = -0.1278
    location_address = "London"
    service_radius = 500
    base_amount_minor = 2500
    currency = "USD"
    status = OrderStatus.PENDING
    tags = factory.LazyFunction(list)
    requirements = factory.LazyFunction(dict)

    class Params:
        accepted = factory.Trait(status=OrderStatus.ACCEPTED)

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("creator", None)
        return super()._create(model_class, *args, **kwargs)
