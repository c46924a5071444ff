"""The HX-* request and response headers in one place."""

import json

from flask import Response, request


def is_htmx() -> bool:
    """Whether the request was made by htmx (and not a history restore)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def hx_trigger(response: Response, event: str, detail: object = None) -> Response:
    """Fire a client-side event after the swap."""
    response.headers["HX-Trigger"] = json.dumps({event: detail}) if detail is not None else event
    return response


def hx_redirect(response: Response, url: str) -> Response:
    """Ask htmx to do a full-page redirect."""
    response.headers["HX-Redirect"] = url
    return response
