"""nginx with the RTMP module as a process of its own (docs/streaming.md).

Renders ``deploy/nginx/rtmp.conf.template`` into a prefix directory of ours (config, pid file,
logs, temp paths) and runs ``nginx -p <prefix> -c <rendered> -g 'daemon off;'``: never the
system's nginx service, never its configuration. The RTMP module is Debian's dynamic one
(``libnginx-mod-rtmp``), loaded by path. Used by ``taplive rtmp`` (the Procfile's ``rtmp``),
``taplive standalone`` and the stream tests.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.config import PROJECT_ROOT, Settings

TEMPLATE = PROJECT_ROOT / "deploy" / "nginx" / "rtmp.conf.template"
INSTALL_HINT = ("install them with: apt-get install nginx libnginx-mod-rtmp "
                "(Debian/Ubuntu; the system's nginx service need not run)")
_MODULE_NAME = "ngx_rtmp_module.so"
# Where Debian's libnginx-mod-rtmp puts the module, and the snippets that name it (their
# relative paths are relative to nginx's default prefix).
_MODULE_DIRS = (Path("/usr/lib/nginx/modules"), Path("/usr/share/nginx/modules"))
_MODULE_SNIPPETS = ("/usr/share/nginx/modules-available", "/etc/nginx/modules-enabled")
_DEFAULT_NGINX_PREFIX = Path("/usr/share/nginx")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class RtmpUnavailable(RuntimeError):
    """nginx or its RTMP module is not installed (the message says what is missing)."""


def find_nginx() -> str | None:
    """The nginx binary: on PATH, else Debian's (/usr/sbin is not on every user's PATH)."""
    if found := shutil.which("nginx"):
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def find_rtmp_module() -> Path | None:
    """The RTMP module's shared object: the usual directories, else the ``load_module`` line
    of the package's snippet."""
    for directory in _MODULE_DIRS:
        if (directory / _MODULE_NAME).is_file():
            return directory / _MODULE_NAME
    for snippets in _MODULE_SNIPPETS:
        for snippet in sorted(Path(snippets).glob("*rtmp*.conf")):
            found = re.search(r"load_module\s+([^;\s]+)\s*;", snippet.read_text())
            if found:
                path = Path(found.group(1))
                path = path if path.is_absolute() else _DEFAULT_NGINX_PREFIX / path
                if path.is_file():
                    return path.resolve()
    return None


def missing() -> list[str]:
    """What is not installed, in words ('nginx', 'the nginx RTMP module'); empty when ready."""
    gaps = []
    if find_nginx() is None:
        gaps.append("nginx")
    if find_rtmp_module() is None:
        gaps.append("the nginx RTMP module (libnginx-mod-rtmp)")
    return gaps


@dataclass(frozen=True)
class RtmpConfig:
    rtmp_port: int
    http_port: int
    hls_dir: Path
    #: The API's callback base (``.../internal/rtmp``) and the secret nginx puts in its URLs.
    callback_url: str
    callback_secret: str
    #: nginx's prefix: the rendered config, pid file, logs and temp paths live here.
    prefix: Path
    listen_host: str = "0.0.0.0"
    #: Who may read /stat besides loopback (the workers' sampler on the private network).
    stat_allow: tuple[str, ...] = ()
    #: Short fragments: a viewer is at most a few seconds behind the publisher.
    hls_fragment_s: int = 1
    hls_playlist_s: int = 6
    log_level: str = "warn"
    #: The checkout's template; an installed package (the Docker image) is told where it is.
    template: Path = TEMPLATE

    @classmethod
    def from_settings(cls, settings: Settings, prefix: Path, listen_host: str = "0.0.0.0",
                      template: Path = TEMPLATE) -> RtmpConfig:
        return cls(rtmp_port=settings.stream_rtmp_port, http_port=settings.stream_http_port,
                   hls_dir=settings.stream_hls_path, callback_url=settings.stream_callback_base,
                   callback_secret=settings.stream_callback_key, prefix=prefix,
                   listen_host=listen_host, template=template,
                   stat_allow=tuple(n.strip() for n in settings.stream_stat_allow.split(",")
                                    if n.strip()))

    @property
    def config_path(self) -> Path:
        return self.prefix / "nginx-rtmp.conf"

    @property
    def stat_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/stat"

    @property
    def hls_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls"


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render(config: RtmpConfig, module_path: Path, template: str | None = None) -> str:
    """The nginx configuration for ``config`` (every ``{{ name }}`` filled, or KeyError)."""
    # As root, nginx's workers would drop to `nobody`, who cannot write the HLS files into a
    # directory of ours; the worker runs as whoever runs us (a non-root user needs no line).
    user = "" if os.geteuid() != 0 else f"user {pwd.getpwuid(os.geteuid()).pw_name};"
    values = {
        "module_path": str(module_path), "user_directive": user, "prefix": str(config.prefix),
        "log_level": config.log_level, "rtmp_listen": _listen(config.listen_host,
                                                              config.rtmp_port),
        "rtmp_port": str(config.rtmp_port), "http_listen": _listen(config.listen_host,
                                                                  config.http_port),
        "callback_url": config.callback_url.rstrip("/"),
        "callback_secret": config.callback_secret, "hls_dir": str(config.hls_dir),
        "hls_fragment": f"{config.hls_fragment_s}s",
        "hls_playlist_length": f"{config.hls_playlist_s}s",
    }
    # /stat's allow-list: loopback always, then the configured networks.
    networks = dict.fromkeys(("127.0.0.1", "::1", *config.stat_allow))
    values["stat_allow"] = " ".join(f"allow {net};" for net in networks)
    text = template if template is not None else config.template.read_text()
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def prepare(config: RtmpConfig) -> list[str]:
    """Write the config and the directories nginx needs; the command line that runs it."""
    nginx, module = find_nginx(), find_rtmp_module()
    if nginx is None or module is None:
        raise RtmpUnavailable(f"missing: {', '.join(missing())}; {INSTALL_HINT}")
    for directory in (config.prefix / "logs", config.prefix / "temp", config.hls_dir):
        directory.mkdir(parents=True, exist_ok=True)
    config.config_path.write_text(render(config, module))
    # The secret is in the rendered file: readable by its owner only.
    config.config_path.chmod(0o600)
    # -e: nginx opens its compiled-in error log (/var/log/nginx) before reading the config,
    # which a non-root user cannot.
    return [nginx, "-p", str(config.prefix), "-e", "stderr", "-c", str(config.config_path),
            "-g", "daemon off;"]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stat_answers(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)
    return False


class RtmpServer:
    """One nginx-rtmp process (for ``taplive standalone`` and the tests): start, wait until
    both listeners answer, stop (SIGTERM: nginx's fast shutdown) or kill."""

    def __init__(self, config: RtmpConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> RtmpServer:
        argv = prepare(self.config)
        log = (self.config.prefix / "logs" / "stderr.log").open("ab")
        # A session of its own: a Ctrl-C meant for the caller's terminal does not reach it,
        # and kill() can take the master and its worker down together.
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx-rtmp exited ({self.process.returncode}): "
                                   f"{self.error_log()[-2000:]}")
            if _port_open(self.config.rtmp_port) and _stat_answers(self.config.stat_url):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx-rtmp did not answer within {timeout_s} s: "
                           f"{self.error_log()[-2000:]}")

    def error_log(self) -> str:
        log = self.config.prefix / "logs" / "stderr.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self, timeout_s: float = 10.0) -> None:
        self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and worker): the crash of the ingest."""
        self._signal(signal.SIGKILL, 5.0, group=True)

    def _signal(self, signum: int, timeout_s: float, group: bool = False) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # The worker outlives a killed master for a moment: wait until the port is free.
        deadline = time.monotonic() + timeout_s
        while _port_open(self.config.rtmp_port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> RtmpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
