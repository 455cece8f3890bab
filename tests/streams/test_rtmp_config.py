"""The streaming server's pieces without a stream: the rendered nginx config (checked by nginx
itself), the /stat parser on a document nginx-rtmp 1.1.4 produced, ``taplive rtmp``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from core import rtmp_server, rtmp_stat
from tests.conftest import make_settings

STAT_XML = Path(__file__).parent / "data" / "stat.xml"


def _config(tmp_path: Path, **overrides: object) -> rtmp_server.RtmpConfig:
    values: dict[str, object] = {
        "stream_rtmp_port": 19350, "stream_http_port": 18080,
        "stream_callback_url": "http://api.internal:8000/internal/rtmp/",
        "stream_hls_dir": str(tmp_path / "hls")}
    settings = make_settings("sqlite://", **(values | overrides))
    return rtmp_server.RtmpConfig.from_settings(settings, tmp_path / "prefix", "127.0.0.1")


def test_the_rendered_config_fills_every_placeholder(tmp_path: Path) -> None:
    config = _config(tmp_path, stream_stat_allow="127.0.0.1/32,10.0.0.0/8")
    text = rtmp_server.render(config, Path("/usr/lib/nginx/modules/ngx_rtmp_module.so"))
    assert "{{" not in text and "}}" not in text
    secret = config.callback_secret
    assert (f"on_publish http://api.internal:8000/internal/rtmp/on_publish?secret={secret};"
            in text)
    assert f"on_publish_done http://api.internal:8000/internal/rtmp/on_publish_done?secret=" \
        f"{secret};" in text
    # The key-named stream is relayed, renamed, to the loopback-only HLS application.
    assert "push rtmp://127.0.0.1:19350/hls;" in text
    assert f"hls_path {tmp_path / 'hls'};" in text and "listen 127.0.0.1:19350;" in text
    assert "allow 10.0.0.0/8;" in text and "allow publish 127.0.0.1;" in text
    assert f"pid {tmp_path / 'prefix'}/nginx.pid;" in text
    with pytest.raises(KeyError):
        rtmp_server.render(config, Path("/x.so"), template="listen {{ nonsense }};")


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    if rtmp_server.missing():
        pytest.skip(f"needs {', '.join(rtmp_server.missing())}")
    # nginx-rtmp resolves the callback host when it loads the config: it must resolve then.
    argv = rtmp_server.prepare(_config(
        tmp_path, stream_callback_url="http://127.0.0.1:8000/internal/rtmp"))
    assert argv[-2:] == ["-g", "daemon off;"]
    checked = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr
    assert (tmp_path / "prefix" / "nginx-rtmp.conf").stat().st_mode & 0o077 == 0  # the secret


def test_stat_is_parsed_into_typed_streams() -> None:
    streams = rtmp_stat.parse(STAT_XML.read_bytes())
    assert [(s.app, s.name) for s in streams] == [
        ("live", "pb_renamed"), ("live", "pb_later"), ("live", "pb_watchers_only"),
        ("hls", "pb_renamed")]
    first = streams[0]
    # The relay to `hls` (client 3) is not the publisher; client 1 is.
    assert (first.publisher_id, first.width, first.height, first.frame_rate) == (
        "1", 320, 240, 25.0)
    # bw_in is 0 for a young stream: its average so far (151061 B in 4.173 s) stands in.
    assert first.bytes_in == 151061 and first.bitrate_kbps == 290
    later = streams[1]
    assert (later.bitrate_kbps, later.width, later.height, later.frame_rate) == (
        812, 1280, 720, 29.97)
    assert streams[2].publisher_id is None and streams[2].width is None
    assert set(rtmp_stat.publishing(streams)) == {"pb_renamed", "pb_later"}


def test_garbage_or_no_answer_is_unavailable() -> None:
    with pytest.raises(rtmp_stat.StatUnavailable):
        rtmp_stat.parse(b"<html>502 Bad Gateway")
    with pytest.raises(rtmp_stat.StatUnavailable):
        rtmp_stat.fetch("http://127.0.0.1:9/stat", timeout_s=1)


def test_taplive_rtmp_prints_its_config(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if rtmp_server.missing():
        pytest.skip(f"needs {', '.join(rtmp_server.missing())}")
    from api.cli import cli

    monkeypatch.setenv("STREAM_RTMP_PORT", "19351")
    monkeypatch.setenv("STREAM_HLS_DIR", str(tmp_path / "hls"))
    result = CliRunner().invoke(cli, ["rtmp", "--prefix", str(tmp_path / "p"),
                                      "--print-config"])
    assert result.exit_code == 0, result.output
    assert "listen 0.0.0.0:19351;" in result.output
    assert (tmp_path / "hls").is_dir()

