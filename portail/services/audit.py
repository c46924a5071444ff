"""The back-office audit trail: `record` writes who did what, each action code with its French label
(what the dashboard and a family's page show an agent)."""

from datetime import datetime

import sqlalchemy as sa

from portail.extensions import db
from portail.models import AuditEvent, User, utcnow

ACTION_LABELS = {
    "family.created": "Famille créée",
    "family.updated": "Famille modifiée",
    "family.code_regenerated": "Nouveau code abonné",
    "staff.created": "Compte du personnel créé",
    "staff.disabled": "Compte du personnel désactivé",
    "staff.enabled": "Compte du personnel réactivé",
    "dossier.accepted": "Modification de dossier acceptée",
    "dossier.refused": "Modification de dossier refusée",
    "dossier.edited": "Dossier modifié par la mairie",
    "health.viewed": "Consultation des données sanitaires",
    "bank.viewed": "Consultation des données bancaires",
    "authorization.created": "Autorisation ajoutée",
    "authorization.toggled": "Autorisation modifiée",
    "activity.saved": "Activité enregistrée",
    "activity.closed": "Jour de fermeture ajouté",
    "activity.reopened": "Jour de fermeture supprimé",
    "enrolment.created": "Inscription à une activité",
    "enrolment.deleted": "Inscription supprimée",
    "booking.entered": "Jour saisi par le service",
    "waiting.promoted": "Enfant placé en tête d’une liste d’attente",
    "waiting.removed": "Enfant retiré d’une liste d’attente",
    "cancellation.created": "Service annulé (grève, fermeture…)",
    "cancellation.undone": "Annulation de service levée",
    "register.viewed": "Registre de pointage consulté (alertes santé)",
    "register.added": "Enfant ajouté au pointage sans réservation",
    "register.closed": "Registre de pointage clôturé",
    "register.reopened": "Registre de pointage rouvert",
    "tariff.created": "Tarif ajouté",
    "tariff.deleted": "Tarif supprimé",
    "billing.started": "Facturation lancée",
    "billing.exported": "Factures exportées pour la trésorerie",
    "attestation.generated": "Attestations fiscales (frais de garde) générées",
    "payment.recorded": "Paiement enregistré",
    "payment.online": "Paiement en ligne reçu",
    "online_payment.refused": "Paiement en ligne refusé par la banque",
    "online_payment.abandoned": "Paiement en ligne abandonné",
    "online_payment.mismatch": "Paiement en ligne : montant différent, à vérifier",
    "online_payment.given_up": "Paiement en ligne abandonné par le parent",
    "online_payment.checked": "Paiement en ligne au montant différent vérifié",
    "sepa.mandate_signed": "Prélèvement choisi (mandat SEPA signé)",
    "sepa.mandate_revoked": "Prélèvement arrêté (mandat SEPA révoqué)",
    "sepa.file_made": "Fichier de prélèvement SEPA créé",
    "sepa.file_downloaded": "Fichier de prélèvement SEPA téléchargé",
    "sepa.debit_rejected": "Prélèvement rejeté par la banque",
    "sepa.report_imported": "Rapport de rejets de prélèvement importé",
    "document_type.saved": "Pièce demandée enregistrée",
    "document.validated": "Pièce justificative validée",
    "document.refused": "Pièce justificative refusée",
    "opening.announced": "Ouverture des inscriptions annoncée",
    "opening.updated": "Ouverture des inscriptions modifiée",
    "opening.cancelled": "Ouverture des inscriptions annulée",
    "calendar_feed.created": "Agenda (ICS) : adresse créée par le parent",
    "calendar_feed.regenerated": "Agenda (ICS) : adresse régénérée par le parent",
    "calendar_feed.revoked": "Agenda (ICS) : adresse supprimée par le parent",
}


class UnknownAction(ValueError):
    """An audit code without a French label: an agent would read the raw code."""


def check(action: str) -> str:
    """The action code itself, once known to have a label."""
    if action not in ACTION_LABELS:
        raise UnknownAction(f"audit action {action!r} has no label in services/audit.py")
    return action


def record(
    actor: User | None,
    action: str,
    target_type: str,
    target_id: int | None,
    detail: str = "",
    at: datetime | None = None,
) -> None:
    """Write an audit row: who did what, when (`action` is a code of ACTION_LABELS; `at`: now unless
    given, e.g. the demo's past)."""
    db.session.add(
        AuditEvent(
            actor_id=actor.id if actor else None,
            action=check(action),
            target_type=target_type,
            target_id=target_id,
            detail=detail or None,
            created_at=at or utcnow(),
        )
    )


def label(action: str) -> str:
    """The French label of an action code (a code from an older version shows as "Autre action")."""
    return ACTION_LABELS.get(action, "Autre action")


def events(target_type: str | None = None, target_id: int | None = None, limit: int | None = None):
    """Audit rows, newest first, with their actor: all of them or those of one target."""
    statement = (
        sa.select(AuditEvent)
        .options(sa.orm.joinedload(AuditEvent.actor))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    )
    if target_type is not None:
        statement = statement.where(AuditEvent.target_type == target_type, AuditEvent.target_id == target_id)
    return list(db.session.scalars(statement.limit(limit)))
