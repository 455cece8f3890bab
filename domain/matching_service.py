"""Matching commands: invite the best providers to a new order, and re-match every pending order
in one optimal batch. Framework-free: the Celery tasks and the CLI call these with a session,
a ``ProviderIndex`` (from the worker's memory) and the presence registry.

The index is a fast *pre-filter* that may be a second or two old; every provider it proposes
is re-checked against live presence (online, heard from recently, still in range) and the
database (verified, not busy, not the creator, never refused this order) before being invited.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.config import Settings
from core.enums import OrderStatus
from core.geo import great_circle_m
from core.metrics import MATCH_CANDIDATES, MATCH_LATENCY, REMATCH_ASSIGNMENT_SIZE
from db.models import Order, OrderAssignment, OrderMatch
from db.queries import matching as match_queries
from db.queries import orders as order_queries
from domain import dispatch
from domain.events import emit
from domain.presence import is_live
from domain.presence_store import PresenceRegistry
from matching import (
    DEFAULT_WEIGHTS,
    CandidateEdges,
    Candidates,
    ProviderIndex,
    ProviderSignals,
    RankedCandidate,
    ScoringWeights,
    assign,
    candidate_edges,
    rank,
    rank_ids,
)

ORDER_MATCHED = "order:matched"
Progress = Callable[[str, int, int], None]  # (phase, done, total)


class MatchSource(StrEnum):
    ORDER_CREATED = "order_created"
    REMATCH = "rematch"


@dataclass(frozen=True)
class MatchingRules:
    max_invitations: int = 10
    offline_after_s: int = 120
    offer_ttl_s: int = 60
    rematch_max_candidates: int = 16
    weights: ScoringWeights = DEFAULT_WEIGHTS
    #: Batched dispatch (``match_due``): at most this many orders per pass, and only orders
    #: created this recently are taken from other tasks (older ones by their own task, the
    #: re-match). Bounds the re-tries of orders that found nobody: they stay unmatched and
    #: due, so each pass within the look-back tries them again.
    batch_limit: int = 200
    due_lookback_s: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> MatchingRules:
        return cls(max_invitations=settings.matching_max_invitations,
                   offline_after_s=settings.presence_offline_after_s,
                   offer_ttl_s=settings.matching_offer_ttl_s,
                   rematch_max_candidates=settings.matching_rematch_max_candidates)

    @property
    def pool(self) -> int:
        """How many index candidates are re-checked live to fill ``max_invitations``."""
        return max(3 * self.max_invitations, 30)


@dataclass(frozen=True)
class MatchResult:
    order_id: uuid.UUID
    invited: list[RankedCandidate]
    already_matched: bool = False
    offer_match_id: uuid.UUID | None = None


# ------------------------------------------------------------------------------- new order
def match_order(session: Session, order_id: uuid.UUID, index: ProviderIndex,
                registry: PresenceRegistry, now: datetime, rules: MatchingRules
                ) -> MatchResult | None:
    """Invite the best-ranked live providers to a pending order (stored as order matches) and
    emit ``order:matched`` for the notification path. Idempotent: the order row is locked and
    an order that already has matches is left alone. None if the order is gone or taken."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or order.status is not OrderStatus.PENDING:
        return None
    if match_queries.has_matches(session, order.id):
        return MatchResult(order.id, [], already_matched=True)
    [result] = match_orders(session, [order], index, registry, now, rules)
    return result


@dataclass(frozen=True)
class PassResult:
    """One batched matching pass (``match_due``)."""

    results: list[MatchResult]
    #: The task's own order was locked by this pass (matched now, found matched, or not
    #: pending); False only when another transaction held it and ``wait`` was not asked.
    own_claimed: bool
    #: Every order the pass locked, by id (loaded: the caller's next step needs them).
    orders: dict[uuid.UUID, Order] = field(default_factory=dict)
    #: The sweep took as many orders as a pass may: more may be due.
    full: bool = False

    @property
    def invited(self) -> int:
        return sum(len(r.invited) for r in self.results)


def match_due(session: Session, order_id: uuid.UUID, index: ProviderIndex,
              registry: PresenceRegistry, now: datetime, rules: MatchingRules, *,
              wait: bool = False) -> PassResult:
    """Batched dispatch (issue 16): match the task's own order together with every other
    order due for a first match (pending, unmatched, created within ``due_lookback_s``), up
    to ``batch_limit``, in one pass and one transaction. What arrived while the previous
    pass ran forms the batch; a lone order goes through at once. New orders do not each get
    a task: their commits ask for a pass only when none is due (``tasks.matching``), so the
    sweep is how most orders are matched.

    Orders are claimed by their row locks (``SKIP LOCKED``), so concurrent passes split the
    due orders between them and a pass that dies leaves its orders due. The own order is
    skipped while another transaction holds it unless ``wait``; the caller then runs a
    waiting pass, so the task's own order is seen matched or matched by the task itself."""
    own = match_queries.claim_order(session, order_id, wait=wait)
    since = now - timedelta(seconds=rules.due_lookback_s)
    others = match_queries.claim_due_orders(session, since, rules.batch_limit - 1,
                                            exclude=order_id)
    due = [o for o in ([own] if own is not None else []) + others
           if o.status is OrderStatus.PENDING]
    matched = match_queries.matched_order_ids(session, [o.id for o in due])
    results = match_orders(session, [o for o in due if o.id not in matched], index, registry,
                           now, rules)
    if own is not None and own.id in matched:
        results.append(MatchResult(own.id, [], already_matched=True))
    return PassResult(results, own_claimed=own is not None, orders={o.id: o for o in due},
                      full=len(others) >= rules.batch_limit - 1)


def match_orders(session: Session, orders: list[Order], index: ProviderIndex,
                 registry: PresenceRegistry, now: datetime, rules: MatchingRules
                 ) -> list[MatchResult]:
    """Invite the best live providers to each of ``orders`` (locked, pending, unmatched) in
    one pass: one index query for the batch (``within_many``), one presence read and one
    eligibility query for every shortlist, one insert of every invitation. Each order's
    invitations are exactly what matching it alone would make: orders do not compete for
    providers here (an invitation is not an assignment; the re-match assigns)."""
    if not orders:
        return []
    started = time.perf_counter()
    no_shows = match_queries.no_show_providers(session, [o.id for o in orders])
    shortlists = [
        _shortlist(index, found, rules, exclude={str(o.creator_id)} | {
            str(p) for p in no_shows.get(o.id, ())})
        for o, found in zip(orders, _candidates_of(index, orders), strict=True)]
    wanted = sorted({pid for short in shortlists for pid in short})
    fresh = registry.records(wanted)
    eligible = {str(p) for p in match_queries.eligible_provider_ids(
        session, [uuid.UUID(p) for p in fresh])}
    ranked = [_rank_live(short, fresh, eligible, o.latitude, o.longitude,
                         o.service_radius, now, rules)
              for o, short in zip(orders, shortlists, strict=True)]
    # The engine plus its live re-check (Redis, one query): the part matching owns, without
    # the order locks and the inserts that any command pays. Every order in the pass waited
    # for all of it, so each observes the pass's time.
    elapsed = time.perf_counter() - started
    for _ in orders:
        MATCH_LATENCY.observe(elapsed)
    rows = [_match_row(o.id, r, i + 1, MatchSource.ORDER_CREATED, index.version, now)
            for o, best in zip(orders, ranked, strict=True) for i, r in enumerate(best)]
    inserted = set(match_queries.insert_ignoring_duplicates(session, OrderMatch, rows,
                                                            ("order_id", "provider_id")))
    per_order: dict[uuid.UUID, int] = {}
    for row in rows:
        if row["id"] in inserted:
            per_order[row["order_id"]] = per_order.get(row["order_id"], 0) + 1
    results = []
    ttl = timedelta(seconds=rules.offer_ttl_s)
    for order, best in zip(orders, ranked, strict=True):
        offer = None
        if best:
            _emit_matched(session, order.id, order.creator_id, per_order.get(order.id, 0),
                          MatchSource.ORDER_CREATED)
            if dispatch.wants_auto_dispatch(order):
                offer = dispatch.start(session, order, now, ttl)
        results.append(MatchResult(order.id, best, offer_match_id=offer.id if offer else None))
    session.flush()
    return results


def _candidates_of(index: ProviderIndex, orders: list[Order]) -> list[Candidates]:
    """Each order's providers in range: one batch query for many orders (a lone order asks
    ``within`` directly, cheaper than building a tree of one point)."""
    if len(orders) == 1:
        [o] = orders
        return [index.within(o.latitude, o.longitude, o.service_radius)]
    edges = index.within_many([o.latitude for o in orders], [o.longitude for o in orders],
                              [float(o.service_radius) for o in orders])
    out = []
    for i in range(len(orders)):
        positions, distances = edges.for_order(i)
        out.append(Candidates(positions, index.ids[positions], distances))
    return out


def _shortlist(index: ProviderIndex, found: Candidates, rules: MatchingRules,
               exclude: set[str]) -> list[str]:
    """The best ``pool`` of the index's candidates (stale signals), minus ``exclude``."""
    # By index position: a handful of excluded ids against hundreds of candidates.
    positions = [index.id_to_index[i] for i in exclude if i in index.id_to_index]
    if positions:
        keep = ~np.isin(found.indices, np.array(positions, dtype=found.indices.dtype))
        found = Candidates(found.indices[keep], found.ids[keep], found.distances_m[keep])
    MATCH_CANDIDATES.observe(len(found))
    return [str(i) for i in rank_ids(found, index.signals, rules.weights, limit=rules.pool)]


def _rank_live(shortlist: list[str], fresh: dict[str, dict[str, Any]], eligible: set[str],
               latitude: float, longitude: float, radius_m: float, now: datetime,
               rules: MatchingRules) -> list[RankedCandidate]:
    """The shortlist re-checked on live presence and eligibility, re-ranked on fresh
    signals; the best ``max_invitations``."""
    ids, dist, records = [], [], []
    for pid in shortlist:
        rec = fresh.get(pid)
        if rec is None or pid not in eligible or not is_live(rec.get("seenAt"), now,
                                                             rules.offline_after_s):
            continue
        d = great_circle_m(latitude, longitude, float(rec["lat"]), float(rec["lon"]))
        travel = rec.get("maxTravelM")
        if d > radius_m or (travel is not None and d > float(travel)):
            continue  # moved out of range since the index was built
        ids.append(pid)
        dist.append(d)
        records.append(rec)
    if not ids:
        return []
    live = Candidates(np.arange(len(ids), dtype=np.intp), np.array(ids, dtype=object),
                      np.array(dist, dtype=np.float64))
    return rank(live, signals_of(records, now), rules.weights, limit=rules.max_invitations)


def signals_of(records: list[dict[str, Any]], now: datetime) -> ProviderSignals:
    """Ranking signals from presence records (NaN = unknown, scored as a neutral prior)."""
    def col(name: str) -> list[float]:
        return [math.nan if r.get(name) is None else float(r[name]) for r in records]

    seen = col("seenAt")
    return ProviderSignals.from_arrays(
        len(records),
        verified=[1.0 if r.get("verified") else 0.0 for r in records],
        seconds_since_active=[max(now.timestamp() - s, 0.0) for s in seen],
        acceptance_rate=col("acceptanceRate"), completion_rate=col("completionRate"))


def _match_row(order_id: uuid.UUID, ranked: RankedCandidate, position: int,
               source: MatchSource, version: int, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "order_id": order_id, "provider_id": uuid.UUID(str(ranked.provider_id)),
        "source": source.value, "status": dispatch.MatchStatus.INVITED.value, "rank": position,
        "score": round(ranked.score, 6), "distance_m": round(ranked.distance_m, 1),
        "breakdown": {k: round(v, 6) for k, v in ranked.breakdown.items()},
        "index_version": version, "created_at": now, "updated_at": now,
    }


def _emit_matched(session: Session, order_id: uuid.UUID, creator_id: uuid.UUID, invited: int,
                  source: MatchSource) -> None:
    emit(session, ORDER_MATCHED, str(order_id), {
        "event": ORDER_MATCHED, "orderId": str(order_id), "creatorId": str(creator_id),
        "invited": invited, "source": source.value,
    })


# ---------------------------------------------------------------------------- batch re-match
@dataclass
class RematchReport:
    orders: int = 0
    providers: int = 0
    matched: int = 0
    total_distance_m: float = 0.0
    mean_distance_m: float | None = None
    p95_distance_m: float | None = None
    unchanged: int = 0
    changed: int = 0  # a different provider than the previous assignment
    new: int = 0  # assigned now, unassigned before
    dropped: int = 0  # assigned before, unassigned now
    invitations: int = 0  # new invitations written for newly assigned providers
    dry_run: bool = False
    index_version: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Clock:
    def __init__(self, report: RematchReport) -> None:
        self._report, self._t = report, time.perf_counter()

    def lap(self, phase: str) -> None:
        t = time.perf_counter()
        self._report.timings_s[phase] = round(t - self._t, 4)
        self._t = t


def rematch(session: Session, index: ProviderIndex, registry: PresenceRegistry, now: datetime,
            rules: MatchingRules, *, region: tuple[float, float, float] | None = None,
            dry_run: bool = False, progress: Progress | None = None) -> RematchReport:
    """Re-match every pending order (in ``region`` = (lat, lon, metres) if given) against the
    current index in one optimal assignment (matched count first, then total distance), and
    record it: assignments are replaced, newly assigned providers are invited (and notified
    through ``order:matched``), exhausted auto-dispatches resume. Running it twice on the same
    positions changes nothing the second time. ``dry_run`` computes the report only."""
    report = RematchReport(dry_run=dry_run, index_version=index.version)
    clock, tick = _Clock(report), progress or (lambda *_: None)
    orders = match_queries.find_pending_orders(session, region)
    if region is not None:
        orders = [o for o in orders
                  if great_circle_m(region[0], region[1], o.latitude, o.longitude) <= region[2]]
        report.providers = len(index.within(*region))
    else:
        report.providers = len(index)
    report.orders = len(orders)
    order_ids = [o.id for o in orders]
    clock.lap("load")
    tick("load", 1, 4)

    edges = _eligible_edges(session, index, orders, rules)
    clock.lap("candidates")
    tick("candidates", 2, 4)

    result = assign(edges)
    chosen = _live_choices(index, registry, orders, result.order_idx, result.provider_idx,
                           result.distance_m, now, rules)
    distances = np.array([d for _, d in chosen.values()], dtype=np.float64)
    report.matched = len(chosen)
    if len(distances):
        report.total_distance_m = round(float(distances.sum()), 1)
        report.mean_distance_m = round(float(distances.mean()), 1)
        report.p95_distance_m = round(float(np.percentile(distances, 95)), 1)
    clock.lap("solve")
    tick("solve", 3, 4)

    previous = match_queries.find_assignments(session, order_ids)
    for oid in order_ids:
        before, after = previous.get(oid), chosen.get(oid)
        if before is None and after is None:
            continue
        if before is None:
            report.new += 1
        elif after is None:
            report.dropped += 1
        elif before.provider_id == after[0]:
            report.unchanged += 1
        else:
            report.changed += 1
    if not dry_run:
        _write(session, index, orders, previous, chosen, report, now, rules)
        REMATCH_ASSIGNMENT_SIZE.observe(report.matched)  # a dry run (CLI) is not an outcome
    clock.lap("write")
    tick("write", 4, 4)
    return report


def _eligible_edges(session: Session, index: ProviderIndex,
                    orders: list[match_queries.PendingOrderRow],
                    rules: MatchingRules) -> CandidateEdges:
    """Candidate edges minus the ones never to use: the order's own creator, providers busy on
    another order, providers who declined or let an offer lapse on that order."""
    if not orders:
        return CandidateEdges.empty(0, len(index))
    edges = candidate_edges(index, [o.latitude for o in orders], [o.longitude for o in orders],
                            [float(o.service_radius) for o in orders],
                            max_candidates=rules.rematch_max_candidates)
    if len(edges) == 0:
        return edges
    provider_ids = index.ids[edges.provider_idx].astype(str)
    creators = np.array([str(o.creator_id) for o in orders])[edges.order_idx]
    keep = provider_ids != creators
    busy = [str(p) for p in match_queries.busy_provider_ids(session)]
    if busy:
        keep &= ~np.isin(provider_ids, busy)
    refused = match_queries.refused_pairs(session, [o.id for o in orders])
    if refused:
        position = {o.id: i for i, o in enumerate(orders)}
        pos = index.id_to_index
        keys = [position[o] * len(index) + pos[str(p)] for o, p in refused if str(p) in pos]
        edge_keys = edges.order_idx.astype(np.int64) * len(index) + edges.provider_idx
        keep &= ~np.isin(edge_keys, np.array(keys, dtype=np.int64))
    return CandidateEdges.build(edges.order_idx[keep], edges.provider_idx[keep],
                                edges.distance_m[keep], edges.n_orders, edges.n_providers)


def _live_choices(index: ProviderIndex, registry: PresenceRegistry,
                  orders: list[match_queries.PendingOrderRow], order_idx: Any,
                  provider_idx: Any, distance_m: Any, now: datetime,
                  rules: MatchingRules) -> dict[uuid.UUID, tuple[uuid.UUID, float]]:
    """order id -> (provider id, metres) for the assignment's pairs whose provider is still
    live (the index may be a moment older than presence)."""
    ids = [str(index.ids[p]) for p in provider_idx.tolist()]
    fresh = registry.records(ids)
    out = {}
    for o, pid, d in zip(order_idx.tolist(), ids, distance_m.tolist(), strict=True):
        rec = fresh.get(pid)
        if rec is not None and is_live(rec.get("seenAt"), now, rules.offline_after_s):
            out[orders[o].id] = (uuid.UUID(pid), float(d))
    return out


def _write(session: Session, index: ProviderIndex, orders: list[match_queries.PendingOrderRow],
           previous: dict[uuid.UUID, OrderAssignment],
           chosen: dict[uuid.UUID, tuple[uuid.UUID, float]], report: RematchReport,
           now: datetime, rules: MatchingRules) -> None:
    match_queries.delete_stale_assignments(session)
    match_queries.delete_assignments(session, [o for o in previous if o not in chosen])
    for oid, (pid, dist) in chosen.items():
        before = previous.get(oid)
        if before is None:
            session.add(OrderAssignment(order_id=oid, provider_id=pid, distance_m=dist,
                                        assigned_at=now))
        elif before.provider_id != pid or abs(before.distance_m - dist) > 0.5:
            before.provider_id, before.distance_m, before.assigned_at = pid, dist, now
    invited = match_queries.invited_pairs(session, list(chosen))
    fresh = [(oid, pid, dist) for oid, (pid, dist) in chosen.items() if (oid, pid) not in invited]
    ranks = match_queries.next_ranks(session, [oid for oid, _, _ in fresh])
    by_id = {o.id: o for o in orders}
    rows = []
    for oid, pid, dist in fresh:
        pos = index.id_to_index[str(pid)]
        one = Candidates(np.array([pos], dtype=np.intp), index.ids[[pos]],
                         np.array([dist], dtype=np.float64))
        [ranked] = rank(one, index.signals, rules.weights)
        rows.append(_match_row(oid, ranked, ranks[oid], MatchSource.REMATCH, index.version, now))
    inserted = set(match_queries.insert_ignoring_duplicates(
        session, OrderMatch, rows, ("order_id", "provider_id")))
    invited_orders = [row["order_id"] for row in rows if row["id"] in inserted]
    report.invitations = len(invited_orders)
    for oid in invited_orders:
        _emit_matched(session, oid, by_id[oid].creator_id, 1, MatchSource.REMATCH)
    ttl = timedelta(seconds=rules.offer_ttl_s)
    for exhausted in match_queries.find_dispatches(session, invited_orders,
                                                   dispatch.DispatchStatus.EXHAUSTED.value):
        dispatch.offer_next(session, exhausted, now, ttl)
    session.flush()
