"""Development tools: the dev mailbox (404 outside development)."""

import email
from email import policy
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template
from markupsafe import Markup, escape

from portail.access import public
from portail.services.outbox import URL_PATTERN as _LINK

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def only_in_development():
    if not current_app.config.get("DEV_TOOLS") or not current_app.config.get("DEV_MAILBOX_DIR"):
        abort(404)


def _mailbox() -> Path:
    return Path(current_app.config["DEV_MAILBOX_DIR"])


def _read(path: Path) -> dict:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body else ""
    return {
        "name": path.stem,
        "subject": message["Subject"],
        "to": message["To"],
        "date": message["Date"],
        "text": text,
    }


def linkify(text: str) -> Markup:
    """Escape a mail body and make its links clickable."""
    html = str(escape(text))
    return Markup(_LINK.sub(lambda match: f'<a href="{match[0]}">{match[0]}</a>', html))


@bp.get("/mailbox")
@public
def mailbox():
    """Every mail sent in development, newest first."""
    directory = _mailbox()
    files = sorted(directory.glob("*.eml"), reverse=True)[:200] if directory.exists() else []
    return render_template("dev/mailbox.html", messages=[_read(path) for path in files])


@bp.get("/mailbox/<name>")
@public
def message(name: str):
    """One mail of the dev mailbox, with its links clickable."""
    path = _mailbox() / f"{name}.eml"
    if "/" in name or not path.is_file():
        abort(404)
    mail = _read(path)
    return render_template("dev/message.html", mail=mail, body=linkify(mail["text"]))
