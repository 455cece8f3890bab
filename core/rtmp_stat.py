"""nginx-rtmp's statistics (``/stat``, the ``rtmp_stat all`` XML) as typed records.

One ``StreamStat`` per stream of an application: its name (in ``live``, the playback id the
stream was renamed to), the publishing client's id (the ``clientid`` of the callbacks), bytes
in, the input bitrate, and the video's size and frame rate from the stream's metadata.
"""

from __future__ import annotations

import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass


class StatUnavailable(RuntimeError):
    """/stat did not answer (nginx down, wrong URL, not allowed) or answered garbage."""


@dataclass(frozen=True)
class StreamStat:
    app: str
    name: str
    #: The publisher's client id (nginx's ``clientid``); None while nobody publishes.
    publisher_id: str | None
    bytes_in: int
    #: Input bitrate. nginx-rtmp's ``bw_in`` is 0 for the first ~10 s of a stream (it is
    #: computed over 10 s windows); the stream's average so far stands in until then.
    bitrate_kbps: int
    width: int | None
    height: int | None
    frame_rate: float | None
    #: How long the stream has existed, in milliseconds.
    time_ms: int


def _int(element: ET.Element | None, tag: str) -> int | None:
    text = element.findtext(tag) if element is not None else None
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _float(element: ET.Element | None, tag: str) -> float | None:
    text = element.findtext(tag) if element is not None else None
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _stream(app: str, element: ET.Element) -> StreamStat:
    publisher = next((client.findtext("id") for client in element.iterfind("client")
                      if client.find("publishing") is not None), None)
    bytes_in = _int(element, "bytes_in") or 0
    time_ms = _int(element, "time") or 0
    bw_in = _int(element, "bw_in") or 0  # bits per second
    if bw_in == 0 and time_ms > 0:
        bw_in = bytes_in * 8 * 1000 // time_ms
    video = element.find("meta/video")
    return StreamStat(app=app, name=element.findtext("name") or "", publisher_id=publisher,
                      bytes_in=bytes_in, bitrate_kbps=round(bw_in / 1000),
                      width=_int(video, "width"), height=_int(video, "height"),
                      frame_rate=_float(video, "frame_rate"), time_ms=time_ms)


def parse(document: bytes | str) -> list[StreamStat]:
    """Every stream of every application in a /stat document."""
    try:
        # Our own nginx, on loopback or the private network (expat expands no external DTDs).
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise StatUnavailable(f"/stat is not XML: {exc}") from exc
    found: list[StreamStat] = []
    for application in root.iterfind("server/application"):
        app = application.findtext("name") or ""
        found.extend(_stream(app, stream) for stream in application.iterfind("live/stream"))
    return found


def fetch(url: str, timeout_s: float = 3.0) -> list[StreamStat]:
    """GET /stat and parse it; StatUnavailable when nginx does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse(response.read())
    except OSError as exc:
        raise StatUnavailable(f"{url}: {exc}") from exc


def publishing(stats: list[StreamStat], app: str = "live") -> dict[str, StreamStat]:
    """The streams of ``app`` that have a publisher, by name."""
    return {s.name: s for s in stats if s.app == app and s.publisher_id is not None}
