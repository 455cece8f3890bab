"""Live streams (issue 13): how long from a provider's publish to the order running and to the
first HLS playlist, and how many concurrent publishers one machine's nginx-rtmp ingests.

Run:  .venv/bin/python -m bench.stream_bench [--runs 20] [--max-publishers 256] [--quick]
      [--publishers 64,128,256] [--clip-kbps 2500] [--window 10] [--skip-ramp]

What runs: a throwaway PostGIS database (migrated), Redis logical database 13 (flushed; the
order's follow-up tasks queue there, no worker runs them: nothing on the measured path waits
for one), the real API over HTTP (werkzeug, threaded, in this process: nginx's callbacks come
over a real socket) and nginx-rtmp started by ``core.rtmp_server`` from the deploy template
with ONE addition, the application ``bare``: ``live`` without ``on_publish``/
``on_publish_done`` (the same ``push`` to ``hls``), the same-run baseline. HLS is written
under /dev/shm (tmpfs) when it exists.

1. Start latency, ``--runs`` times each (after one warm-up of each): ffmpeg publishing a live
   x264 test pattern (640x360, 30 fps, ultrafast, zerolatency, -g 30) to ``live/<key>`` of a
   freshly accepted order; from ffmpeg's process start to (a) the order's row saying
   ``active`` (PostgreSQL polled every 5 ms, a fresh snapshot each time) and (b)
   ``/hls/<playbackId>.m3u8`` answering 200 with at least one fragment (polled every 5 ms);
   the baseline publishes to ``bare/<random name>`` -> (b). The ``on_publish`` callback's own
   time is measured around the API's WSGI call (server side, request in to response out).
2. Concurrent publishers, ``copy`` only: one 10 s H.264 clip of the same test pattern is
   encoded ONCE, then N ffmpeg clients publish it with ``-re -stream_loop -1 -c copy`` to
   ``bare`` (so the clients cost little CPU; N live x264 encoders would measure ffmpeg, not
   nginx). N = 1, 2, 4, 8 ... until a step is not clean: every stream publishing in /stat, its
   bytes_in over the window at >= 90 % of the clip's bitrate, its HLS playlist (the file nginx
   writes) advancing by >= 80 % of the fragments the window should produce. A few playlists
   are also fetched over HTTP, timed (what a viewer waits). A step whose /stat does not answer
   within 3 s failed; after the first failed step, one more halfway back. nginx's CPU
   (master + worker, from /proc ticks over the window), the clients' CPU and the machine's
   idle time say what limits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core import rtmp_server, rtmp_stat

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET = "bench-secret-key-0123456789abcdef0123456789"
NYC = (40.7128, -74.0060)
POLL_S = 0.005
BASELINE_APP = "bare"
# The test pattern of the brief: 640x360 at 30 fps, a keyframe every second (= hls_fragment).
PATTERN = ["-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
        "-pix_fmt", "yuv420p"]
# `live` minus its callbacks, relayed to `hls` exactly as `live` is: the only difference
# between the two start paths is on_publish (and so the order's start).
_BARE_APP = f"""
        # Benchmark only (bench/stream_bench.py): `live` without callbacks, the baseline.
        application {BASELINE_APP} {{
            live on;
            record off;
            push rtmp://127.0.0.1:{{{{ rtmp_port }}}}/hls;
            deny play all;
        }}

"""
_HLS_APP = "        # Loopback only: the relay from `live` publishes here"


# ---------------------------------------------------------------------------------- ingest
def with_baseline_app(config: rtmp_server.RtmpConfig) -> rtmp_server.RtmpConfig:
    """``config`` rendered from the deploy template plus the ``bare`` application (written
    into the config's prefix)."""
    text = config.template.read_text()
    if _HLS_APP not in text:
        raise RuntimeError(f"the template changed: no {_HLS_APP.strip()!r} to insert before")
    config.prefix.mkdir(parents=True, exist_ok=True)
    template = config.prefix / "bench.conf.template"
    template.write_text(text.replace(_HLS_APP, _BARE_APP + _HLS_APP, 1))
    return replace(config, template=template)


def hls_playlist(config: rtmp_server.RtmpConfig, name: str) -> str | None:
    with contextlib.suppress(OSError), urllib.request.urlopen(
            f"{config.hls_url}/{name}.m3u8", timeout=2) as response:
        return bytes(response.read()).decode()
    return None


def fragments(playlist: str | None) -> list[tuple[int, float]]:
    """(media sequence number, duration) of each fragment of a playlist."""
    if not playlist:
        return []
    found = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    sequence = int(found.group(1)) if found else 0
    out = []
    for duration in re.findall(r"#EXTINF:([\d.]+)", playlist):
        out.append((sequence, float(duration)))
        sequence += 1
    return out


def _read(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        return path.read_text()
    return None


# ------------------------------------------------------------------------------ publishers
def _stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """As a provider stops OBS: SIGINT, ffmpeg closes the RTMP stream."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def live_publisher(url: str) -> subprocess.Popen[bytes]:
    """ffmpeg encoding the test pattern live (x264) and publishing it to ``url``."""
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                             *PATTERN, *X264, "-f", "flv", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass(frozen=True)
class StartSample:
    #: ms from ffmpeg's process start to the order row saying active (None: no order).
    active_ms: float | None
    #: ms from ffmpeg's process start to the playlist answering with a fragment.
    playlist_ms: float


def measure_start(config: rtmp_server.RtmpConfig, app: str, name: str, playback_id: str,
                  is_active: Callable[[], bool] | None = None,
                  timeout_s: float = 20.0) -> StartSample:
    """Publish the live test pattern to ``<app>/<name>``; time until ``is_active()`` (when
    given) and until ``<playback_id>.m3u8`` lists a fragment. Stops the publisher."""
    url = f"rtmp://127.0.0.1:{config.rtmp_port}/{app}/{name}"
    started = time.perf_counter()
    process = live_publisher(url)
    active_ms: float | None = None
    playlist_ms: float | None = None
    try:
        while (active_ms is None and is_active is not None) or playlist_ms is None:
            now = time.perf_counter()
            if now - started > timeout_s:
                raise TimeoutError(f"{app}/{name}: active={active_ms} playlist={playlist_ms} "
                                   f"after {timeout_s} s (ffmpeg rc {process.poll()})")
            if active_ms is None and is_active is not None and is_active():
                active_ms = (time.perf_counter() - started) * 1000
            if playlist_ms is None and fragments(hls_playlist(config, playback_id)):
                playlist_ms = (time.perf_counter() - started) * 1000
            time.sleep(POLL_S)
    finally:
        _stop(process)
    assert playlist_ms is not None
    return StartSample(active_ms=active_ms, playlist_ms=playlist_ms)


def encode_clip(path: Path, seconds: int = 10, kbps: int = 2500) -> float:
    """The test pattern encoded once to an FLV file; its video bitrate in bytes per second.
    ``kbps``: constant bitrate (x264 pads with filler), as a phone's 720p stream would carry;
    the test pattern alone compresses to ~250 kbit/s, which would flatter the ingest. 0:
    x264's own rate control."""
    rate = [] if not kbps else [
        "-b:v", f"{kbps}k", "-minrate", f"{kbps}k", "-maxrate", f"{kbps}k",
        "-bufsize", f"{kbps}k", "-x264-params", "nal-hrd=cbr"]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    *PATTERN, "-t", str(seconds), *X264, *rate, "-f", "flv", str(path)],
                   check=True)
    return path.stat().st_size / seconds


def copy_publisher(clip: Path, url: str) -> subprocess.Popen[bytes]:
    """ffmpeg re-publishing the pre-encoded clip in a loop, in real time, without encoding."""
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                             "-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f", "flv",
                             url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ------------------------------------------------------------------------- CPU accounting
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def _machine_idle_s() -> tuple[float, float]:
    """(idle, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (values[3] + values[4]) / _TICK, sum(values[:8]) / _TICK


# ---------------------------------------------------------------------------------- ramp
@dataclass
class RampStep:
    publishers: int
    window_s: float
    expected_bps: float
    publishing: int = 0
    exited: int = 0
    #: Per stream: bytes_in over the window / the clip's bitrate (1.0 = real time).
    ingest_ratios: list[float] = field(default_factory=list)
    #: Per stream: HLS fragments produced in the window / fragments expected.
    hls_ratios: list[float] = field(default_factory=list)
    max_fragment_s: float = 0.0
    nginx_cpu: float = 0.0  # share of one core, master + worker
    clients_cpu: float = 0.0  # share of one core, all ffmpeg clients together
    machine_busy: float = 0.0  # share of the whole machine (all cores)
    #: A viewer's GET of a playlist over HTTP during the step (five of them), in ms.
    hls_http_ms: list[float] = field(default_factory=list)
    #: Why the step could not be measured (nginx's /stat did not answer in time).
    error: str | None = None

    @property
    def clean(self) -> bool:
        return (self.error is None and self.publishing == self.publishers and self.exited == 0
                and len(self.ingest_ratios) == self.publishers
                and min(self.ingest_ratios) >= 0.9 and len(self.hls_ratios) == self.publishers
                and min(self.hls_ratios) >= 0.8)


def measure_publishers(config: rtmp_server.RtmpConfig, nginx_pid: int, clip: Path,
                       clip_bps: float, publishers: int, window_s: float = 10.0,
                       fragment_s: float = 1.0) -> RampStep:
    """``publishers`` copy clients on ``bare``; what nginx ingested and packaged over
    ``window_s`` once all of them publish."""
    names = [f"load{uuid.uuid4().hex[:10]}" for _ in range(publishers)]
    step = RampStep(publishers=publishers, window_s=window_s, expected_bps=clip_bps)
    nginx = [nginx_pid, *_children(nginx_pid)]
    opened, nginx_opened, machine_opened = (time.perf_counter(),
                                            sum(_cpu_s(p) for p in nginx), _machine_idle_s())
    processes = [copy_publisher(clip, f"rtmp://127.0.0.1:{config.rtmp_port}/"
                                      f"{BASELINE_APP}/{name}") for name in names]
    try:
        deadline = time.monotonic() + 10 + publishers * 0.1
        while time.monotonic() < deadline:
            live = rtmp_stat.publishing(rtmp_stat.fetch(config.stat_url), BASELINE_APP)
            if all(name in live for name in names):
                break
            time.sleep(0.2)
        # Every stream past its first fragments before the window opens.
        time.sleep(2 * fragment_s + 0.5)

        def sample() -> tuple[float, dict[str, int], dict[str, int], float, float]:
            stats = rtmp_stat.publishing(rtmp_stat.fetch(config.stat_url), BASELINE_APP)
            # From the files nginx writes (what is packaged), not over HTTP: serving the
            # playlists is measured apart (hls_http_ms), a few of them.
            last = {}
            for name in names:
                found = fragments(_read(config.hls_dir / f"{name}.m3u8"))
                if found:
                    last[name] = found[-1][0]
            return (time.perf_counter(), {n: s.bytes_in for n, s in stats.items()}, last,
                    sum(_cpu_s(p) for p in nginx), sum(_cpu_s(p.pid) for p in processes))

        t0, bytes0, seq0, nginx0, clients0 = sample()
        busy0 = _machine_idle_s()
        time.sleep(window_s)
        t1, bytes1, seq1, nginx1, clients1 = sample()
        busy1 = _machine_idle_s()
        elapsed = t1 - t0
        step.publishing = sum(1 for name in names if name in bytes1)
        step.exited = sum(1 for p in processes if p.poll() is not None)
        step.ingest_ratios = [(bytes1[n] - bytes0[n]) / elapsed / clip_bps
                              for n in names if n in bytes0 and n in bytes1]
        step.hls_ratios = [(seq1[n] - seq0[n]) * fragment_s / elapsed
                           for n in names if n in seq0 and n in seq1]
        step.max_fragment_s = max((d for n in names for _, d in fragments(
            _read(config.hls_dir / f"{n}.m3u8"))), default=0.0)
        for name in names[:5]:
            asked = time.perf_counter()
            if hls_playlist(config, name) is not None:
                step.hls_http_ms.append((time.perf_counter() - asked) * 1000)
        step.nginx_cpu = (nginx1 - nginx0) / elapsed
        step.clients_cpu = (clients1 - clients0) / elapsed
        idle_s, total_s = busy1[0] - busy0[0], busy1[1] - busy0[1]
        step.machine_busy = 1 - idle_s / total_s if total_s else 0.0
    except rtmp_stat.StatUnavailable as exc:
        # nginx's one worker serves /stat from the same event loop as the streams: no answer
        # within 3 s means that loop is saturated (or the machine is).
        step.error = str(exc)
        # What it cost from the clients' start until then, to say who was saturated.
        elapsed = time.perf_counter() - opened
        step.nginx_cpu = (sum(_cpu_s(p) for p in nginx) - nginx_opened) / elapsed
        step.clients_cpu = sum(_cpu_s(p.pid) for p in processes) / elapsed
        idle, total = _machine_idle_s()
        step.machine_busy = 1 - (idle - machine_opened[0]) / (total - machine_opened[1])
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            _stop(process)
    return step


def ramp(config: rtmp_server.RtmpConfig, nginx_pid: int, clip: Path, clip_bps: float,
         counts: Iterable[int], window_s: float) -> Iterator[RampStep]:
    """One step per count, until (and including) the first step that is not clean; then once
    halfway between the last clean count and that one."""
    last_clean = 0
    for count in counts:
        step = measure_publishers(config, nginx_pid, clip, clip_bps, count, window_s)
        yield step
        time.sleep(3.0)  # nginx closes the previous step's streams and relays
        if not step.clean:
            if last_clean and count - last_clean > 1:
                yield measure_publishers(config, nginx_pid, clip, clip_bps,
                                         (last_clean + count) // 2, window_s)
            return
        last_clean = count


# ------------------------------------------------------------------- the API, over HTTP
class CallbackTimer:
    """WSGI middleware: the server-side time of each on_publish callback (request in to
    response body out), in ms."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.on_publish_ms: list[float] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").endswith("/on_publish"):
            return self.app(environ, start_response)
        started = time.perf_counter()
        body = list(self.app(environ, start_response))
        self.on_publish_ms.append((time.perf_counter() - started) * 1000)
        return body


@contextlib.contextmanager
def serve(wsgi: Any, port: int) -> Iterator[None]:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):  # the callback URLs carry the shared secret
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    server = make_server("127.0.0.1", port, wsgi, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, name="bench-api", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Orders:
    """Accepted orders through the API (test client: the same request code), one fresh
    creator and provider each, the provider standing at the place."""

    def __init__(self, app: Any, url: str) -> None:
        from sqlalchemy import create_engine

        self.app, self.client = app, app.test_client()
        self.engine = create_engine(url)
        self._made = 0

    def _user(self, role: Any, verified: bool) -> dict[str, str]:
        from datetime import UTC, datetime

        from api.auth.tokens import issue_access_token
        from core.enums import VerificationStatus
        from db.models import User

        self._made += 1
        name = f"bench_{role.value}_{self._made}_{uuid.uuid4().hex[:6]}"
        database = self.app.extensions["taplive"].db
        with self.app.app_context(), database.transaction() as session:
            user = User(username=name, email=f"{name}@bench.test", password_hash="x",
                        role=role, profile={}, created_at=datetime.now(UTC),
                        updated_at=datetime.now(UTC),
                        verification_status=(VerificationStatus.VERIFIED if verified
                                             else VerificationStatus.PENDING))
            session.add(user)
            session.flush()
            return {"Authorization": f"Bearer {issue_access_token(user)}"}

    def _call(self, method: str, path: str, headers: dict[str, str],
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.open(f"/api/v1{path}", method=method, json=body, headers=headers)
        assert response.status_code < 300, (path, response.status_code, response.json)
        data: dict[str, Any] = response.json["data"]
        return data

    def accepted(self) -> tuple[str, str, str]:
        """(order id, stream key, playback id) of a freshly accepted order."""
        from core.enums import UserRole

        creator = self._user(UserRole.CREATOR, verified=False)
        provider = self._user(UserRole.PROVIDER, verified=True)
        order = self._call("POST", "/orders", creator, {
            "title": "Bench stream", "serviceRadius": 500, "baseAmount": "25.00",
            "currency": "USD",
            "location": {"latitude": NYC[0], "longitude": NYC[1]}})["order"]
        applied = self._call("POST", f"/orders/{order['id']}/applications", provider, {})
        self._call("POST", f"/orders/{order['id']}/accept", creator,
                   {"applicationId": applied["application"]["id"]})
        self._call("PUT", "/providers/me/location", provider,
                   {"latitude": NYC[0], "longitude": NYC[1]})
        key = self._call("GET", f"/orders/{order['id']}/stream", provider)["stream"]["streamKey"]
        playback = self._call("GET", f"/orders/{order['id']}/stream",
                              creator)["stream"]["playbackUrl"]
        return order["id"], key, playback.rsplit("/", 1)[1].removesuffix(".m3u8")

    def is_active(self, order_id: str) -> Callable[[], bool]:
        from sqlalchemy import select

        from core.enums import OrderStatus
        from db.models import Order

        query = select(Order.status).where(Order.id == uuid.UUID(order_id))

        def probe() -> bool:
            with self.engine.connect() as conn:  # a fresh snapshot each poll
                return bool(conn.execute(query).scalar_one() == OrderStatus.ACTIVE)
        return probe


# ---------------------------------------------------------------------------------- report
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def _row(label: str, values: list[float], base: float | None = None) -> str:
    p50 = statistics.median(values)
    ratio = f" | {p50 / base:.2f}x" if base else " | 1.00x"
    return (f"| {label} | {p50:.0f} | {percentile(values, 99):.0f} | {min(values):.0f} | "
            f"{max(values):.0f}{ratio} |")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--max-publishers", type=int, default=256)
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds each ramp step is measured over")
    parser.add_argument("--quick", action="store_true", help="3 runs, ramp to 4, 5 s windows")
    parser.add_argument("--clip-kbps", type=int, default=2500,
                        help="the ramp's clip bitrate (CBR); 0 = x264's own (~250 kbit/s)")
    parser.add_argument("--publishers", default="",
                        help="ramp steps instead of 1, 2, 4 ... --max-publishers (e.g. 128,192)")
    parser.add_argument("--skip-ramp", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.max_publishers, args.window = 3, 4, 5.0
    if gaps := rtmp_server.missing() + ([] if shutil.which("ffmpeg") else ["ffmpeg"]):
        raise SystemExit(f"missing: {', '.join(gaps)}; {rtmp_server.INSTALL_HINT}")

    import redis

    from api import create_app
    from bench.scratch import create_database, drop_database
    from core.config import load_settings
    from db import migrate
    from db.session import make_engine

    print(f"uptime before: {_uptime()}")
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="taplive-streambench-",
                                 dir=shm if shm.is_dir() else None))
    name, url = create_database()
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    server: rtmp_server.RtmpServer | None = None
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        api_port, rtmp_port, http_port = _free_port(), _free_port(), _free_port()
        settings = load_settings(
            app_env="development", database_url=url, redis_url=REDIS_URL, secret_key=SECRET,
            jwt_secret_key=SECRET + "-jwt", log_format="console", log_level="WARNING",
            db_pool_size=10, stream_rtmp_port=rtmp_port, stream_http_port=http_port,
            stream_callback_url=f"http://127.0.0.1:{api_port}/internal/rtmp",
            stream_hls_dir=str(work / "hls"), stream_grace_s=3600,
            payment_gateway="offline", payment_method_required=False)
        app = create_app(settings)
        timer = CallbackTimer(app.wsgi_app)
        config = with_baseline_app(rtmp_server.RtmpConfig.from_settings(
            settings, work / "nginx", listen_host="127.0.0.1"))
        with serve(timer, api_port):
            server = rtmp_server.RtmpServer(config).start()
            assert server.process is not None
            orders = Orders(app, url)
            ours: list[StartSample] = []
            bare: list[StartSample] = []
            for run in range(args.runs + 1):  # run 0 warms up both paths
                order_id, key, playback_id = orders.accepted()
                ours.append(measure_start(config, "live", key, playback_id,
                                          orders.is_active(order_id)))
                name_ = f"base{uuid.uuid4().hex[:10]}"
                bare.append(measure_start(config, BASELINE_APP, name_, name_))
                if run == 0:
                    ours.clear()
                    bare.clear()
                    timer.on_publish_ms.clear()
            _report_start(work, ours, bare, timer.on_publish_ms)
            if not args.skip_ramp:
                clip = work / "clip.flv"
                clip_bps = encode_clip(clip, kbps=args.clip_kbps)
                counts = [int(n) for n in args.publishers.split(",")] if args.publishers \
                    else [2 ** i for i in range(args.max_publishers.bit_length())]
                print(f"\nconcurrent copy publishers on `{BASELINE_APP}` (clip: 640x360 30 fps "
                      f"x264, {clip_bps * 8 / 1000:.0f} kbit/s; window {args.window:.0f} s "
                      "per step)\n")
                print("| publishers | publishing | ingest ratio min / median | HLS ratio min "
                      "| longest fragment (s) | playlist GET p50 (ms) | nginx CPU (1 core) "
                      "| clients CPU (1 core) | machine busy | clean |")
                print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|", flush=True)
                clean = []
                for step in ramp(config, server.process.pid, clip, clip_bps, counts,
                                 args.window):
                    print(_ramp_row(step), flush=True)
                    if step.clean:
                        clean.append(step.publishers)
                print(f"\nhighest clean step: {max(clean) if clean else 0} publishers")
    finally:
        if server is not None:
            server.stop()
        store.flushdb()
        drop_database(name)
        shutil.rmtree(work, ignore_errors=True)
        print(f"uptime after: {_uptime()}")


def _report_start(work: Path, ours: list[StartSample], bare: list[StartSample],
                  callback_ms: list[float]) -> None:
    tmpfs = str(work).startswith("/dev/shm")
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; HLS under {work} ({'tmpfs' if tmpfs else 'disk'}); "
          f"{len(ours)} runs each (+1 warm-up), sequential\n")
    print("| from ffmpeg's process start to ... | p50 (ms) | p99 (ms) | min (ms) | max (ms) "
          "| p50 vs baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    base = statistics.median(s.playlist_ms for s in bare)
    print(_row("baseline: first playlist, no callback (`bare`)",
               [s.playlist_ms for s in bare]))
    print(_row("the order `active` in PostgreSQL (`live`, on_publish)",
               [s.active_ms for s in ours if s.active_ms is not None], base))
    print(_row("first playlist with a fragment (`live`, on_publish)",
               [s.playlist_ms for s in ours], base))
    if callback_ms:
        print(f"\non_publish in the API (server side, WSGI call): p50 "
              f"{statistics.median(callback_ms):.1f} ms, p99 "
              f"{percentile(callback_ms, 99):.1f} ms, max {max(callback_ms):.1f} ms "
              f"({len(callback_ms)} calls)", flush=True)


def _ramp_row(step: RampStep) -> str:
    if step.error:
        return (f"| {step.publishers} | ? | ? | ? | ? | ? | {step.nginx_cpu:.0%} | "
                f"{step.clients_cpu:.0%} | {step.machine_busy:.0%} | NO ({step.error}; CPU "
                "since the clients started) |")
    ingest = step.ingest_ratios or [0.0]
    hls = step.hls_ratios or [0.0]
    return (f"| {step.publishers} | {step.publishing} | {min(ingest):.2f} / "
            f"{statistics.median(ingest):.2f} | {min(hls):.2f} | {step.max_fragment_s:.2f} "
            f"| {statistics.median(step.hls_http_ms or [0.0]):.0f} | {step.nginx_cpu:.0%} "
            f"| {step.clients_cpu:.0%} | {step.machine_busy:.0%} "
            f"| {'yes' if step.clean else 'NO'} |")


if __name__ == "__main__":
    main()
