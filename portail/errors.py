"""French error pages (403, 404, 405, 413, 429, 500) and the 'database busy' page."""

import logging

from flask import Flask, render_template
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from portail.extensions import db
from portail.services.transactions import Conflict

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Requête invalide", "La requête n'a pas pu être traitée. Rechargez la page et réessayez."),
    403: ("Accès refusé", "Vous n'avez pas accès à cette page."),
    404: ("Page introuvable", "Cette page n'existe pas ou vous n'y avez pas accès."),
    405: ("Action impossible", "Cette action n'est pas possible à cette adresse."),
    413: ("Fichier trop volumineux", "Le fichier envoyé dépasse la taille autorisée."),
    429: (
        "Trop de tentatives",
        "Vous avez fait trop de tentatives. Patientez quelques minutes puis réessayez.",
    ),
    500: ("Erreur du serveur", "Une erreur inattendue s'est produite. Réessayez plus tard."),
    503: (
        "Service momentanément occupé",
        "Le service est momentanément occupé et rien n'a été enregistré. Réessayez dans un instant.",
    ),
}


def render_error(code: int):
    """The French page of an HTTP error code."""
    title, message = MESSAGES.get(code, MESSAGES[500])
    return render_template("errors/error.html", code=code, title=title, message=message), code


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 400 and "CSRF" in (error.description or ""):
            return render_template(
                "errors/error.html",
                code=400,
                title="Session expirée",
                message="Le formulaire a expiré. Rechargez la page et recommencez.",
            ), 400
        if error.code not in MESSAGES:
            return error
        return render_error(error.code)

    @app.errorhandler(OperationalError)
    def database_busy(error: OperationalError):
        db.session.rollback()
        log.warning("database error: %s", error.orig)
        return render_error(503)

    @app.errorhandler(Conflict)
    def still_conflicting(error: Conflict):
        """Concurrent writes that kept winning over this one (conflicts.ATTEMPTS times): nothing saved."""
        db.session.rollback()
        log.warning("write conflict: %s", error)
        return render_error(503)
