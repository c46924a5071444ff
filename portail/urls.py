"""URL helpers."""

from urllib.parse import urlsplit

from flask import current_app


def safe_next(target: str | None) -> str | None:
    """Return `target` only if it is a local path (no scheme, no host, no '//' or backslash)."""
    if not target:
        return None
    target = target.strip()
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    return target


def public_url(endpoint: str, **values) -> str:
    """The absolute link to a page for a mail: PUBLIC_URL joined with the endpoint's path.

    Built from the configured address, never from a request's Host header, and without a request
    (the worker and the scheduler only have an app context)."""
    base = urlsplit(current_app.config["PUBLIC_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)
