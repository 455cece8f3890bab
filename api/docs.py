"""The API's documentation pages, ``GET /api/v1/docs`` (Swagger UI) and ``GET /api/v1/redoc``
(Redoc), both reading ``/api/v1/openapi.json``.

flask-smorest's own pages load their scripts from a CDN and start them with inline scripts, so
on a machine without internet, or under a content-security policy, they are blank. These pages
serve Swagger UI and Redoc from this origin instead: scripts/ensure_web_assets.sh (and the
Dockerfile's web stage) install them from npm (``swagger-ui-dist``, ``redoc``, pinned by
web/package-lock.json) and copy the bundles into ``api/static/vendor/`` (git-ignored), beside the
watch page's player. The pages start them with a script file of their own, so the policy below
allows nothing but this origin.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Blueprint, Response, make_response, render_template, url_for

docs = Blueprint("docs", __name__, url_prefix="/api/v1", template_folder="templates",
                 static_folder="static", static_url_path="/docs/assets")

_STATIC = Path(__file__).parent / "static"
#: What scripts/ensure_web_assets.sh copies in; absent until the build has run it.
SWAGGER_UI_FILES = ("vendor/swagger-ui-bundle.js", "vendor/swagger-ui.css")
REDOC_FILES = ("vendor/redoc.standalone.js",)

#: Only this origin, for everything. Swagger UI sets element styles from script (CSSOM, which
#: CSP does not restrict). Redoc writes its stylesheet into <style> elements
#: (styled-components): those carry the response's nonce, which the page hands to Redoc, so no
#: other inline style is allowed ('unsafe-inline' stays off). Two <style> elements are written
#: while the bundle loads, before Redoc can be given the nonce (style-loader's copy of
#: perfect-scrollbar's stylesheet, empty at first): they are allowed by their hashes, which
#: belong to the redoc version web/package-lock.json pins (the browser test, which fails on any
#: CSP violation, says when an upgrade changes them). Its search index is built in a worker
#: made from a blob: URL. Its "API docs by Redocly" logo is an <img> from cdn.redoc.ly, which
#: img-src refuses before any request is made (Redoc then hides it).
_BASE_POLICY = [
    "default-src 'none'",
    "script-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
]


REDOC_LOAD_TIME_STYLES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the element, still empty
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar (redoc 2.5.4)
)


def installed(files: tuple[str, ...]) -> bool:
    return all((_STATIC / name).is_file() for name in files)


def _page(template: str, files: tuple[str, ...], policy: list[str], nonce: str = "") -> Response:
    response = make_response(render_template(
        template, spec_url=url_for("api-docs.openapi_json"), present=installed(files),
        nonce=nonce, asset=lambda name: url_for("docs.static", filename=name)))
    response.headers["Content-Security-Policy"] = "; ".join(policy)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@docs.get("/docs")
def swagger_ui() -> Response:
    return _page("docs_swagger.html", SWAGGER_UI_FILES,
                 [*_BASE_POLICY, "style-src 'self'"])


@docs.get("/redoc")
def redoc() -> Response:
    nonce = secrets.token_urlsafe(16)  # a fresh one per response, as CSP requires
    return _page("docs_redoc.html", REDOC_FILES,
                 [*_BASE_POLICY,
                  " ".join(["style-src 'self'", f"'nonce-{nonce}'", *REDOC_LOAD_TIME_STYLES]),
                  "worker-src blob:"], nonce)
