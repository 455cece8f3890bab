"""``taplive stream publish|stop ORDER``: the standalone fallback where nginx-rtmp is not
installed (docs/streaming.md, "Standalone fallback").

The command plays nginx-rtmp's part: it calls the same ``/internal/rtmp/on_publish`` and
``on_publish_done`` callbacks of the running API, over HTTP, with the callback secret, from
loopback, as the ingest would. So the order starts, is timed and completes through exactly the
code path a real stream takes (the geofence rule, segments, the grace, proof of stream), only
without video. It runs on the server (it reads the stream session and derives the key from the
service's secret), never on a provider's machine.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from api.services import services
from domain.stream_sessions import StreamRules, StreamStatus, current, facts, stream_key

#: What a refusal most likely means, by the session's state (the API logs the exact reason;
#: nginx itself learns nothing more than the status code either).
_HINTS = {
    StreamStatus.REVOKED.value: "the key was revoked (the order was cancelled or re-accepted)",
    StreamStatus.ENDED.value: "the stream has ended and the order is finished",
    StreamStatus.LIVE.value: "another publisher is live on this key",
}


@click.group("stream")
def stream_cli() -> None:
    """Drive an order's stream through the ingest callbacks (no nginx needed)."""


def _api_url(value: str | None) -> str:
    return (value or "http://127.0.0.1:8000").rstrip("/")


def _call(api_url: str, hook: str, name: str, client_id: str) -> int:
    """POST one callback as nginx-rtmp does (form-encoded); the HTTP status it answered."""
    secret = urllib.parse.quote(services().settings.stream_callback_key, safe="")
    body = urllib.parse.urlencode({"app": "live", "name": name, "clientid": client_id,
                                   "call": hook.removeprefix("on_"), "addr": "127.0.0.1"})
    request = urllib.request.Request(
        f"{api_url}/internal/rtmp/{hook}?secret={secret}", data=body.encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"})

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        # on_publish answers 302 with the playback id (nginx's rename): an answer, not a hop.
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except urllib.error.URLError as exc:
        raise click.ClickException(f"the API does not answer at {api_url} ({exc.reason}); "
                                   "start it (make run) or pass --api-url") from exc


def _session_of(order_id: uuid.UUID) -> tuple[str, str, str | None, str]:
    """(status, key, current publisher, playback id) of the order's latest stream session."""
    with services().db.transaction() as session:
        stream = current(session, order_id)
        if stream is None:
            raise click.ClickException(
                f"order {order_id} has no stream: it gets one when a provider is accepted")
        key = stream_key(services().settings.secret_key, stream.id)
        return stream.status, key, stream.client_id, stream.playback_id


def _report(order_id: uuid.UUID) -> str:
    with services().db.transaction() as session:
        stream = current(session, order_id)
        assert stream is not None
        seen = facts(stream, datetime.now(UTC))
        return (f"stream {stream.status}: {seen['publishedSeconds']} s published, "
                f"{seen['disconnections']} disconnection(s)")


api_url_option = click.option(
    "--api-url", envvar="TAPLIVE_API_URL", default=None,
    help="The running API (default http://127.0.0.1:8000, as `make run` serves it).")


@stream_cli.command("publish")
@click.argument("order_id", type=click.UUID)
@api_url_option
@with_appcontext
def publish_command(order_id: uuid.UUID, api_url: str | None) -> None:
    """Start publishing ORDER_ID's stream: the first publish starts the order (the provider's
    last known position must be inside the geofence, as for POST /start)."""
    status, key, _, playback_id = _session_of(order_id)
    client_id = "cli-" + secrets.token_hex(6)
    answer = _call(_api_url(api_url), "on_publish", key, client_id)
    if answer >= 400:
        hint = _HINTS.get(status, "the order is not accepted or active, or the provider's "
                                  "last position is unknown or outside the geofence")
        raise click.ClickException(f"publish refused ({answer}): {hint}")
    rules = StreamRules.from_settings(services().settings)
    click.echo(f"publishing as {client_id}; {_report(order_id)}")
    click.echo(f"stop with: taplive stream stop {order_id}  (the order completes "
               f"{rules.grace_s} s after the stop if it ran at least {rules.min_seconds} s)")
    click.echo(f"playback id: {playback_id}")


@stream_cli.command("stop")
@click.argument("order_id", type=click.UUID)
@api_url_option
@with_appcontext
def stop_command(order_id: uuid.UUID, api_url: str | None) -> None:
    """Stop the live publisher of ORDER_ID's stream (as nginx's on_publish_done would)."""
    status, _, client_id, playback_id = _session_of(order_id)
    if status != StreamStatus.LIVE.value or client_id is None:
        raise click.ClickException(f"nothing to stop: the stream is {status}")
    answer = _call(_api_url(api_url), "on_publish_done", playback_id, client_id)
    if answer >= 400:
        raise click.ClickException(f"stop refused ({answer})")
    click.echo(f"stopped; {_report(order_id)}")
