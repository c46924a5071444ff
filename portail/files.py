"""Serving files privately, for the family's and the staff's views alike: stored uploads, and the
documents made on request (PDFs, exports)."""

from flask import Response, abort, make_response, send_file

from portail.services import uploads


def send_photo(name: str):
    """Serve a stored image privately: attachment, nosniff, never cached."""
    return send_stored(name, f"photo.{name.rsplit('.', 1)[-1]}")


def send_stored(name: str, download_name: str):
    """Serve a stored upload privately: attachment (never rendered by the browser as a page),
    nosniff (set on every response), never cached."""
    try:
        path = uploads.path_of(name)
    except FileNotFoundError:
        abort(404)
    if not path.is_file():
        abort(404)
    response = send_file(
        path, mimetype=uploads.mimetype_of(name), as_attachment=True, download_name=download_name
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


def attachment(body: bytes | str, mimetype: str, filename: str) -> Response:
    """A document made for this request, as a download (attachment) never kept by a cache: an
    invoice, a certificate, an export, a direct-debit file."""
    response = make_response(body)
    response.headers["Content-Type"] = mimetype
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
