"""A light Socket.IO client fleet: thousands of authenticated sockets in one process.

One python-socketio ``AsyncClient`` per socket costs a few hundred KiB and a handful of tasks;
ten thousand of them would make the client process the bottleneck of any server benchmark.
Here each socket is one WebSocket (the ``websockets`` library, on uvloop when present) speaking
Engine.IO v4 / Socket.IO v5 frames directly, WebSocket transport only:

- server ``0{sid, pingInterval, ...}`` (Engine.IO OPEN), client ``40{auth}`` (Socket.IO CONNECT
  with the token), server ``40{sid, pid}`` or ``44{message, data}`` (refused);
- server ``2`` (ping) -> client ``3`` (pong);
- ``42[event, data, offset?]`` events, ``42<n>[...]`` / ``43<n>[...]`` calls with an ack.

What a socket receives is reduced to what a benchmark needs: per event *key* (``data.bench``
for a benchmark's own emits, ``inv:<order>`` for a rank-1 invitation) the count and the first
and last receipt time (``time.time()``), and, for sockets connected with ``track=True``, the
ids of the events seen and the last offset (to resume after a forced disconnect, as the
official JavaScript client does).

Used two ways: as a library (``LightClient``, the test that proves it really talks to the
server), and as the fleet process of bench/realtime_bench.py: ``python -m bench.rt_client``
reads one JSON command per line on stdin and answers one JSON line on stdout (see ``Fleet``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import resource
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class Refused(Exception):
    """The server answered CONNECT with CONNECT_ERROR (``44``)."""

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.data = data


@dataclass
class Receipt:
    count: int
    first: float
    last: float


def event_key(event: str, data: Any) -> str | None:
    """What a benchmark waits for in this event, if anything."""
    if not isinstance(data, dict):
        return None
    if "bench" in data:
        return str(data["bench"])
    payload = data.get("payload")
    if event == "order:created" and isinstance(payload, dict) and payload.get("rank") == 1:
        return f"inv:{payload.get('orderId')}"
    return None


@dataclass
class LightClient:
    """One authenticated Socket.IO socket over a bare WebSocket."""

    url: str  # http://host:port of the server
    token: str
    receipts: dict[str, Receipt]
    track: bool = False
    deflate: bool = True  # offer permessage-deflate, as browsers do
    sid: str | None = None
    pid: str | None = None
    offset: str | None = None
    seen: list[str] = field(default_factory=list)
    events: list[tuple[str, list[Any]]] = field(default_factory=list)  # when keep_events
    keep_events: bool = False
    _ws: ClientConnection | None = None
    _reader: asyncio.Task[None] | None = None
    _acks: dict[int, asyncio.Future[list[Any]]] = field(default_factory=dict)
    _ack_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def connect(self, *, resume: bool = False, timeout: float = 30.0) -> None:
        """Open the socket and authenticate; ``resume`` hands back ``pid`` and the last
        offset so the server replays what was missed."""
        ws_url = self.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        ws = await connect(ws_url, compression="deflate" if self.deflate else None,
                           ping_interval=None, max_queue=64, open_timeout=timeout)
        try:
            opening = await asyncio.wait_for(ws.recv(), timeout)
            if not isinstance(opening, str) or not opening.startswith("0"):
                raise RuntimeError(f"no Engine.IO OPEN: {opening!r}")
            auth: dict[str, Any] = {"token": self.token}
            if resume and self.pid:
                auth["pid"] = self.pid
            if resume and self.offset:
                auth["offset"] = self.offset
            await ws.send("40" + json.dumps(auth, separators=(",", ":")))
            while True:
                reply = await asyncio.wait_for(ws.recv(), timeout)
                if reply == "2":
                    await ws.send("3")
                    continue
                break
            if not isinstance(reply, str):
                raise RuntimeError(f"unexpected binary frame {reply!r}")
            if reply.startswith("44"):
                raise Refused(json.loads(reply[2:]))
            if not reply.startswith("40"):
                raise RuntimeError(f"no Socket.IO CONNECT reply: {reply!r}")
            body = json.loads(reply[2:])
            self.sid, self.pid = body.get("sid"), body.get("pid") or self.pid
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws))

    async def call(self, event: str, data: Any = None, timeout: float = 10.0) -> list[Any]:
        """Emit with an ack and wait for the server's answer."""
        assert self._ws is not None
        ack = next(self._ack_ids)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack] = future
        await self._ws.send(f"42{ack}" + json.dumps([event, data], separators=(",", ":")))
        return await asyncio.wait_for(future, timeout)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                if not isinstance(frame, str):
                    continue
                if frame == "2":
                    await ws.send("3")
                elif frame.startswith("42"):
                    self._on_event(frame[2:], time.time())
                elif frame.startswith("43"):
                    digits = len(frame) - len(frame[2:].lstrip("0123456789")) - 2
                    future = self._acks.pop(int(frame[2:2 + digits]), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(frame[2 + digits:]))
                elif frame.startswith("41") or frame == "1":
                    break
        except ConnectionClosed:
            pass

    def _on_event(self, text: str, at: float) -> None:
        args = json.loads(text)
        if not isinstance(args, list) or not args:
            return
        event, rest = str(args[0]), args[1:]
        if self.keep_events:
            self.events.append((event, rest))
        data = rest[0] if rest else None
        if self.track:
            if isinstance(data, dict) and "id" in data:
                self.seen.append(str(data["id"]))
            if len(rest) > 1 and isinstance(rest[-1], str):
                self.offset = rest[-1]  # what the JavaScript client remembers too
        key = event_key(event, data)
        if key is not None:
            receipt = self.receipts.get(key)
            if receipt is None:
                self.receipts[key] = Receipt(1, at, at)
            else:
                receipt.count += 1
                receipt.last = at

    def drop(self) -> None:
        """A forced disconnect: the TCP connection is cut with no Socket.IO goodbye."""
        if self._ws is not None:
            self._ws.transport.abort()
        if self._reader is not None:
            self._reader.cancel()
        self._ws = None

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send("41")
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        self._ws = None


class Fleet:
    """The clients of one process, driven by JSON commands (``handle``)."""

    def __init__(self) -> None:
        self.groups: dict[str, list[LightClient]] = {}
        self.receipts: dict[str, Receipt] = {}
        self.max_lag = 0.0
        self._ticker: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        """The event loop's worst oversleep on a 10 ms tick: if the clients ever fell behind
        the server, it shows here."""
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.max_lag = max(self.max_lag, time.perf_counter() - started - 0.01)

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        op = command["op"]
        if op == "connect":
            clients = [LightClient(command["url"], token, self.receipts,
                                   track=command.get("track", False),
                                   deflate=command.get("deflate", True))
                       for token in command["tokens"]]
            self.groups.setdefault(command["group"], []).extend(clients)
            return await self._connect(clients, command.get("concurrency", 100), False)
        if op == "reconnect":
            clients = self.groups[command["group"]]
            return await self._connect(clients, command.get("concurrency", 100), True)
        if op == "drop":
            for client in self.groups[command["group"]]:
                client.drop()
            return {"dropped": len(self.groups[command["group"]])}
        if op == "receipts":
            prefix = command["prefix"]
            taken = {k: [r.count, r.first, r.last] for k, r in self.receipts.items()
                     if k.startswith(prefix)}
            for key in taken:
                del self.receipts[key]
            return {"receipts": taken}
        if op == "seen":
            prefix = command.get("prefix", "")
            return {"seen": [[i for i in c.seen if i.startswith(prefix)]
                             for c in self.groups[command["group"]]]}
        if op == "stats":
            lag, self.max_lag = self.max_lag, 0.0
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return {"connected": sum(c.connected for g in self.groups.values() for c in g),
                    "cpu_s": usage.ru_utime + usage.ru_stime, "rss_kib": _rss_kib(),
                    "max_lag_ms": lag * 1000}
        if op in ("close", "quit"):
            await asyncio.gather(*(c.close() for g in self.groups.values() for c in g),
                                 return_exceptions=True)
            self.groups.clear()
            return {"closed": True}
        raise ValueError(f"unknown op {op!r}")

    @staticmethod
    async def _connect(clients: Iterable[LightClient], concurrency: int, resume: bool
                       ) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []

        async def one(client: LightClient) -> bool:
            async with gate:
                try:
                    await client.connect(resume=resume)
                    return True
                except Exception as exc:  # reported, counted: a refused socket is a finding
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    return False

        started = time.perf_counter()
        results = await asyncio.gather(*(one(c) for c in clients))
        return {"ok": sum(results), "failed": len(results) - sum(results),
                "errors": errors[:5], "seconds": time.perf_counter() - started}


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _serve() -> None:
    fleet = Fleet()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        try:
            reply = await fleet.handle(command)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if command["op"] == "quit":
            return


def main() -> None:
    try:
        import uvloop
    except ImportError:  # plain asyncio works, a little heavier
        asyncio.run(_serve())
    else:
        uvloop.run(_serve())


if __name__ == "__main__":
    main()
