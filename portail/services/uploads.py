"""Uploads (child photos, pièces justificatives): checked from their bytes, images re-encoded without
metadata, PDFs checked to open and to carry no active content and kept byte for byte, stored under
random names outside static/."""

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
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(jpg|png|pdf)")
DOCUMENT_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpeg", "image/png": "png"}
# Characters that could disguise a name: controls, bidirectional overrides (e.g. "facture\u202efdp.exe").
HIDDEN = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


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


def save_document(data: bytes, formats: list[str]) -> tuple[str, str]:
    """Check a pièce justificative (PDF, JPEG or PNG among `formats`), store it; return (name, mimetype).

    Images are re-encoded like photos; a PDF must open and is kept byte for byte."""
    if not data:
        raise UploadError("Le fichier est vide.")
    if len(data) > MAX_BYTES:
        raise UploadError("Le fichier dépasse 5 Mo.")
    kind = filetype.guess(data)
    accepted = ", ".join(f.upper() for f in formats)
    if kind is None or DOCUMENT_TYPES.get(kind.mime) not in formats:
        raise UploadError(f"Ce type de fichier n'est pas accepté : formats acceptés {accepted}.")
    if kind.mime != "application/pdf":
        name = save_image(data)
        return name, mimetype_of(name)
    _check_pdf(data)
    name = f"{secrets.token_hex(16)}.pdf"
    path_of(name).write_bytes(data)
    db.session.info.setdefault("files_on_rollback", []).append(name)
    return name, "application/pdf"


def _check_pdf(data: bytes) -> None:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise UploadError("Le PDF est protégé par un mot de passe : envoyez-le sans protection.")
        if len(reader.pages) < 1:
            raise UploadError("Le PDF ne contient aucune page.")
        _refuse_active_content(reader.trailer["/Root"])
    except UploadError:
        raise
    except (PdfReadError, Exception):
        raise UploadError("Le PDF est illisible ou endommagé.") from None


_RESAVE = (
    " et n'est pas accepté. Enregistrez-le à nouveau avec « Imprimer » puis « Enregistrer au format "
    "PDF », et envoyez ce nouveau fichier."
)
PDF_JAVASCRIPT = "Ce PDF contient du JavaScript" + _RESAVE
PDF_LAUNCH = "Ce PDF contient une action qui lance un programme" + _RESAVE
PDF_EMBEDDED_FILE = "Ce PDF contient des fichiers joints" + _RESAVE
# A PDF reaches an agent's viewer: nothing in it may run code or carry another file. Keys and
# action types are looked for in every object reachable from the catalogue, not only in the usual
# places (/Names, /OpenAction, /AA, annotations), since a viewer follows any of them.
_JAVASCRIPT_KEYS = {"/JS", "/JavaScript"}
_EMBEDDED_KEYS = {"/EmbeddedFiles", "/EF"}


def _refuse_active_content(root) -> None:
    """Raise UploadError when a PDF carries JavaScript, a launch action or an embedded file."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, IndirectObject):
            if (node.idnum, node.generation) in seen:
                continue
            seen.add((node.idnum, node.generation))
            node = node.get_object()
        if isinstance(node, DictionaryObject):  # stream objects too: their dictionary is checked
            keys = set(node.keys())
            # node[key] resolves an indirect value, node.get(key) would not
            action, kind, subtype = (
                node[key] if key in node else None for key in ("/S", "/Type", "/Subtype")
            )
            if keys & _JAVASCRIPT_KEYS or action == "/JavaScript":
                raise UploadError(PDF_JAVASCRIPT)
            if action == "/Launch":
                raise UploadError(PDF_LAUNCH)
            if keys & _EMBEDDED_KEYS or kind == "/EmbeddedFile" or subtype == "/FileAttachment":
                raise UploadError(PDF_EMBEDDED_FILE)
            stack.extend(node.values())
        elif isinstance(node, ArrayObject):
            stack.extend(node)


def check_filename(name: str) -> None:
    """Refuse names that try to pass for something else: folders, "..", hidden or direction-changing characters."""
    if "/" in name or "\\" in name or ".." in name or HIDDEN.search(name):
        raise UploadError(
            "Le nom du fichier contient des caractères non autorisés : renommez-le puis envoyez-le à nouveau."
        )


def clean_filename(name: str | None, extension: str) -> str:
    """A safe display name: no folders, no hidden or direction-changing characters, the real extension."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = HIDDEN.sub("", base).strip(" .")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = re.sub(r"[^\w .()-]", "_", stem)[:80].strip(" .") or "document"
    return f"{stem}.{extension}"


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
    return {"png": "image/png", "pdf": "application/pdf"}.get(name.rsplit(".", 1)[-1], "image/jpeg")
