"""Static files: their URLs carry a hash of their content, so browsers keep them for a year.

`url_for('static', filename=…)` adds `?v=<hash>`; a request with the current hash is answered
with a far-future, immutable `Cache-Control`, any other (an old page asking for an old
version) with `no-cache`, so the browser revalidates. A changed file gets a new URL.
"""

import hashlib
import os
from functools import cache

from flask import Flask, Response, request

ONE_YEAR = 365 * 24 * 3600
IMMUTABLE = f"public, max-age={ONE_YEAR}, immutable"


@cache
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """The first 12 hex digits of the file's SHA-256 (cached per path, mtime and size)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()[:12]


def version(app: Flask, filename: str) -> str | None:
    """The content hash of a static file, or None when there is no such file."""
    path = os.path.join(app.static_folder or "", filename)
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _digest(path, stat.st_mtime_ns, stat.st_size)


def init_app(app: Flask) -> None:
    @app.url_defaults
    def versioned_static_urls(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "v" not in values and "filename" in values:
            values["v"] = version(app, values["filename"])

    @app.after_request
    def cache_static_files(response: Response) -> Response:
        if request.endpoint != "static" or response.status_code not in (200, 304):
            return response
        current = version(app, (request.view_args or {}).get("filename", ""))
        asked = request.args.get("v")
        response.headers["Cache-Control"] = IMMUTABLE if asked and asked == current else "no-cache"
        return response
