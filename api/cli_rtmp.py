"""``taplive rtmp``: the streaming server (nginx with the RTMP module) in the foreground.

Renders deploy/nginx/rtmp.conf.template into its own prefix directory and replaces this process
with ``nginx -g 'daemon off;'`` (core/rtmp_server.py), so a process manager's signals reach
nginx itself: SIGTERM (fast) or SIGQUIT (graceful) shutdown. The Procfile's ``rtmp``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from core import rtmp_server
from core.config import PROJECT_ROOT, load_settings


@click.command("rtmp")
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), envvar="RTMP_PREFIX",
              default=PROJECT_ROOT / "var" / "nginx-rtmp", show_default=True,
              help="nginx's own directory (writable): rendered config, pid file, temp files.")
@click.option("--template", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              envvar="RTMP_TEMPLATE", default=rtmp_server.TEMPLATE, show_default=True,
              help="The config template (deploy/nginx/rtmp.conf.template).")
@click.option("--host", default="0.0.0.0", show_default=True,
              help="Address both listeners (RTMP and HTTP) bind to.")
@click.option("--print-config", is_flag=True, help="Print the rendered config and exit.")
def rtmp_command(prefix: Path, template: Path, host: str, print_config: bool) -> None:
    """Run nginx-rtmp (ingest, HLS, /stat) in the foreground, as a process of its own."""
    settings = load_settings()
    config = rtmp_server.RtmpConfig.from_settings(settings, prefix.resolve(), listen_host=host,
                                                  template=template)
    try:
        argv = rtmp_server.prepare(config)
    except rtmp_server.RtmpUnavailable as exc:
        raise click.ClickException(
            f"{exc}. Without them, `taplive stream publish|stop ORDER` drives the same "
            "callbacks (docs/streaming.md, standalone fallback).") from exc
    if print_config:
        click.echo(config.config_path.read_text())
        return
    click.echo(f"nginx-rtmp: ingest rtmp://{host}:{config.rtmp_port}/live/<stream key>, "
               f"HLS http://{host}:{config.http_port}/hls/<playbackId>.m3u8, "
               f"callbacks {config.callback_url}/...", err=True)
    os.execv(argv[0], argv)
