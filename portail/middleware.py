"""Requests that waited longer than their client would are answered 503 at once, not worked on.

A sync gunicorn worker takes requests in turn: at a peak, a request can wait tens of seconds in
the listen queue, and by then its parent has often given up or clicked again — at 2,500 parents,
38 % of the argon2 verifications were for parents already gone. The reverse proxy stamps each
request when it arrives (nginx: `proxy_set_header X-Request-Start "t=${msec}";`); a request that
waited more than its limit before a worker took it gets a small 503 page with `Retry-After`,
built without Flask, the database or Redis. Login POSTs have a shorter limit: their verification
is the costliest work of the portal. Without the header (no proxy, development) nothing changes.
"""

import logging
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

HEADER = "HTTP_X_REQUEST_START"
LOGIN_PATH = "/connexion"
RETRY_AFTER = "5"  # seconds
PAGE = (
    '<!doctype html>\n<html lang="fr">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    "<title>Service très demandé</title>\n</head>\n<body>\n<main>\n"
    "<h1>Service très demandé</h1>\n"
    "<p>Votre demande a attendu trop longtemps et n'a pas été traitée : rien n'a été enregistré. "
    "Réessayez dans quelques secondes.</p>\n"
    "</main>\n</body>\n</html>\n"
).encode()


def request_start(value: str) -> float | None:
    """The epoch seconds of an X-Request-Start value (`t=` then seconds with decimals, as nginx's
    $msec, or milliseconds or microseconds, as other proxies write it); None when unreadable."""
    try:
        stamp = float(value.strip().removeprefix("t="))
    except ValueError:
        return None
    if stamp > 1e14:  # microseconds
        return stamp / 1e6
    if stamp > 1e11:  # milliseconds
        return stamp / 1e3
    return stamp


class QueueTimeout:
    """WSGI middleware: 503 with Retry-After for a request that waited in line longer than its limit."""

    def __init__(
        self, app: Callable, limit: float, login_limit: float, clock: Callable[[], float] = time.time
    ):
        self.app = app
        self.limit = limit
        self.login_limit = login_limit
        self.clock = clock

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        stamp = environ.get(HEADER)
        if stamp:
            started = request_start(stamp)
            waited = self.clock() - started if started is not None else 0.0
            login = environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == LOGIN_PATH
            limit = self.login_limit if login else self.limit
            if limit > 0 and waited > limit:
                log.warning(
                    "dropped %s %s: it waited %.1f s for a worker (limit %.0f s)",
                    environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"),
                    waited,
                    limit,
                )
                start_response(
                    "503 Service Unavailable",
                    [
                        ("Content-Type", "text/html; charset=utf-8"),
                        ("Content-Length", str(len(PAGE))),
                        ("Retry-After", RETRY_AFTER),
                        ("Cache-Control", "no-store"),
                        ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
                        ("X-Content-Type-Options", "nosniff"),
                    ],
                )
                return [PAGE]
        return self.app(environ, start_response)
