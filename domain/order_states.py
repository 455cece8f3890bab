"""The order state machine, defined once; the API and the tasks both drive orders through it.

    pending ──accept──▶ accepted ──start──▶ active ──complete──▶ completed ──dispute──▶ disputed
       │                   │                  │                                        │
       └──cancel/expire────┴──────cancel──────┘                      resolve: release ─┘─▶ completed
                           ▼                                         resolve: refund ──▶ cancelled
                       cancelled

Automatic edges (issue 17, docs/orders.md has the diagram with its timers): ``no_show``
(accepted -> cancelled, reason ``no_show``, by the beat), ``reopen`` (cancelled as a no-show ->
pending, by the creator), an overdue active order completed by the system, and a dispute
resolved by the system's default rule.

An acceptance whose card wants 3-D Secure stays ``accepted`` with its escrow
``awaiting_authentication`` (the provider may not start meanwhile); if the creator does not
authenticate within PAYMENT_AUTHENTICATION_TIMEOUT_MINUTES (or the bank refuses), the system
undoes the acceptance: ``accepted ──lapse_acceptance──▶ pending`` (event
``order:acceptance_lapsed``), and the order is matched again.

Expiry is a cancellation with reason ``expired`` (the spec's enum has no separate state, and a
client treats both the same way: the order will not happen). Who may fire each transition is part
of the table, so "may this actor do this now?" has exactly one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.enums import OrderStatus
from core.errors import InvalidStateTransition, PermissionDenied


class Actor(StrEnum):
    CREATOR = "creator"  # the order's creator
    PROVIDER = "provider"  # the order's assigned provider
    ADMIN = "admin"
    SYSTEM = "system"  # beat jobs and tasks


class Action(StrEnum):
    ACCEPT = "accept"
    START = "start"
    COMPLETE = "complete"
    CANCEL = "cancel"
    EXPIRE = "expire"
    DISPUTE = "dispute"
    RESOLVE_RELEASE = "resolve_release"
    RESOLVE_REFUND = "resolve_refund"
    LAPSE_ACCEPTANCE = "lapse_acceptance"  # 3-D Secure never completed: back to pending
    NO_SHOW = "no_show"
    REOPEN = "reopen"


@dataclass(frozen=True)
class Transition:
    action: Action
    sources: frozenset[OrderStatus]
    target: OrderStatus
    actors: frozenset[Actor]
    event: str  # the event published after commit


S = OrderStatus
TRANSITIONS: dict[Action, Transition] = {
    t.action: t
    for t in (
        Transition(Action.ACCEPT, frozenset({S.PENDING}), S.ACCEPTED,
                   frozenset({Actor.CREATOR, Actor.SYSTEM}), "order:accepted"),
        Transition(Action.START, frozenset({S.ACCEPTED}), S.ACTIVE,
                   frozenset({Actor.PROVIDER}), "order:started"),
        Transition(Action.COMPLETE, frozenset({S.ACTIVE}), S.COMPLETED,
                   frozenset({Actor.PROVIDER, Actor.SYSTEM}), "order:completed"),
        # Before the stream starts either side may walk away; once live, either may stop it.
        Transition(Action.CANCEL, frozenset({S.PENDING}), S.CANCELLED,
                   frozenset({Actor.CREATOR, Actor.ADMIN}), "order:cancelled"),
        Transition(Action.EXPIRE, frozenset({S.PENDING}), S.CANCELLED,
                   frozenset({Actor.SYSTEM}), "order:expired"),
        Transition(Action.DISPUTE, frozenset({S.COMPLETED}), S.DISPUTED,
                   frozenset({Actor.CREATOR}), "order:disputed"),
        # The system resolves a dispute nobody did by the default rule (issue 17).
        Transition(Action.RESOLVE_RELEASE, frozenset({S.DISPUTED}), S.COMPLETED,
                   frozenset({Actor.ADMIN, Actor.SYSTEM}), "order:resolved"),
        Transition(Action.RESOLVE_REFUND, frozenset({S.DISPUTED}), S.CANCELLED,
                   frozenset({Actor.ADMIN, Actor.SYSTEM}), "order:resolved"),
        Transition(Action.LAPSE_ACCEPTANCE, frozenset({S.ACCEPTED}), S.PENDING,
                   frozenset({Actor.SYSTEM}), "order:acceptance_lapsed"),
        # A provider who never started: a cancellation (so the hold is released by the same
        # follow-up as any cancellation), told to both parties as ``order:cancelled``.
        Transition(Action.NO_SHOW, frozenset({S.ACCEPTED}), S.CANCELLED,
                   frozenset({Actor.SYSTEM}), "order:cancelled"),
        # After a no-show the creator may put the order back up for matching.
        Transition(Action.REOPEN, frozenset({S.CANCELLED}), S.PENDING,
                   frozenset({Actor.CREATOR}), "order:reopened"),
    )
}
# Cancelling an accepted or active order is allowed to both parties (and admins).
_CANCEL_LATE = Transition(Action.CANCEL, frozenset({S.ACCEPTED, S.ACTIVE}), S.CANCELLED,
                          frozenset({Actor.CREATOR, Actor.PROVIDER, Actor.ADMIN}),
                          "order:cancelled")


def transition_for(action: Action, current: OrderStatus) -> Transition:
    """The transition ``action`` takes from ``current``, or INVALID_STATE_TRANSITION (409)."""
    if action is Action.CANCEL and current in _CANCEL_LATE.sources:
        return _CANCEL_LATE
    transition = TRANSITIONS[action]
    if current not in transition.sources:
        raise InvalidStateTransition(
            f"Cannot {action.value.replace('_', ' ')} an order that is {current.value}.",
            details={"status": current.value, "action": action.value,
                     "allowedFrom": sorted(s.value for s in transition.sources)},
        )
    return transition


def check_transition(action: Action, current: OrderStatus, actor: Actor) -> Transition:
    """State first, then actor: a participant asking for an impossible move learns why (409);
    one who may never do it gets 403."""
    transition = transition_for(action, current)
    if actor not in transition.actors:
        raise PermissionDenied(
            f"The order's {actor.value} may not {action.value.replace('_', ' ')} it.",
            details={"action": action.value, "actor": actor.value},
        )
    return transition


def allowed_actions(current: OrderStatus, actor: Actor) -> list[Action]:
    """What ``actor`` could do now, derived from the table (used to check the table's shape)."""
    result = []
    for action in Action:
        try:
            check_transition(action, current, actor)
        except (InvalidStateTransition, PermissionDenied):
            continue
        result.append(action)
    return result
