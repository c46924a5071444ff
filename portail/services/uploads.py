"""Uploaded images: checked from their bytes, re-encoded without metadata, stored under random names."""

import io
import re
import secrets
import warnings
from pathlib import Path

import filetype
from flask import current_app
from PIL import Image

from portail.extensions import db

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; more is refused as a decompression bomb
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(jpg|png)")


class UploadError(ValueError):
    """A refused file; the message is French and shown to the user."""


def storage_dir() -> Path:
    """Where uploads live: outside static/, configurable with UPLOAD_DIR."""
    path = Path(current_app.config["UPLOAD_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def path_of(name: str) -> Path:
    """The file of a stored name (names are random hex, so no path traversal is possible)."""
    if not name or not STORED_NAME.fullmatch(name):
        raise FileNotFoundError(name)
    return storage_dir() / name


def save_image(data: bytes) -> str:
    """Check and re-encode a JPEG or PNG image, store it, and return its random name."""
    if not data:
        raise UploadError("Le fichier est vide.")
    if len(data) > MAX_BYTES:
        raise UploadError("Le fichier dépasse 5 Mo.")
    kind = filetype.guess(data)
    if kind is None or kind.mime not in IMAGE_TYPES:
        raise UploadError("Seules les images JPEG ou PNG sont acceptées.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise UploadError("L'image est trop grande (40 mégapixels au plus).")
                image.load()
                clean = image.convert("RGB") if IMAGE_TYPES[kind.mime] == "JPEG" else image.copy()
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("L'image est trop grande (40 mégapixels au plus).") from None
    except Exception:
        raise UploadError("L'image est illisible ou endommagée.") from None
    out = io.BytesIO()
    clean.save(out, format=IMAGE_TYPES[kind.mime])  # no exif= argument: metadata is dropped
    name = f"{secrets.token_hex(16)}.{kind.extension}"
    path_of(name).write_bytes(out.getvalue())
    # If the transaction that references the file fails, the file goes too.
    db.session.info.setdefault("files_on_rollback", []).append(name)
    return name


def delete_after_commit(name: str | None) -> None:
    """Remove a stored file once the current transaction has committed."""
    if name:
        db.session.info.setdefault("files_after_commit", []).append(name)


def remove(name: str) -> None:
    """Delete a stored file if it exists."""
    try:
        path_of(name).unlink(missing_ok=True)
    except FileNotFoundError:
        pass


def mimetype_of(name: str) -> str:
    return "image/png" if name.endswith(".png") else "image/jpeg"
