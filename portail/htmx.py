"""The HX-* request and response headers in one place."""

from flask import request


def is_htmx() -> bool:
    """Whether the request was made by htmx (and not a history restore)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )
