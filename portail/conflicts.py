"""Every write view runs again when a concurrent identical request won the race.

A view reads, calls a service and commits once; when the database stops it because another request
just did the same (see `services.transactions.retryable`), the view is rolled back and run again
from the start. Its second run reads what the other request wrote, and answers as to a second
click: the current state (the cell as it is, "déjà enregistré", the page of the change), never a
500. A SQLite lock is not run again here: it comes after 5 s of waiting, and the "réessayez" page
(503) answers it. Views that commit several times (the period form) retry each unit themselves
with `transactions.run`, so a retry never repeats a committed part.
"""

from functools import wraps

from flask import Flask, request

from portail.services import transactions

ATTEMPTS = 4
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def retry_on_conflict(view):
    """Run a write view again (up to ATTEMPTS times) when it lost a race to a concurrent request."""

    @wraps(view)
    def guarded(*args, **kwargs):
        for attempt in range(ATTEMPTS):
            try:
                return view(*args, **kwargs)
            except transactions.CONCURRENCY_ERRORS as error:
                if (
                    request.method not in WRITE_METHODS
                    or not transactions.retryable(error, locks=False)
                    or attempt == ATTEMPTS - 1
                ):
                    raise
                from portail.services.outbox import rollback

                rollback()
                for upload in request.files.values():  # the next run reads the files again
                    upload.stream.seek(0)
                transactions.pause(attempt)
        raise AssertionError("unreachable")

    return guarded


def init_app(app: Flask) -> None:
    """Wrap every view that accepts a write method (call once the blueprints are registered)."""
    writers = {rule.endpoint for rule in app.url_map.iter_rules() if WRITE_METHODS & (rule.methods or set())}
    for endpoint in writers:
        app.view_functions[endpoint] = retry_on_conflict(app.view_functions[endpoint])
