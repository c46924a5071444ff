"""Transactional outbox: queue a mail with the change, send it from the worker after commit."""

import logging
import re
from pathlib import Path

import sqlalchemy as sa
from flask import current_app, render_template
from flask_mail import Message
from sqlalchemy.orm import Session

from portail.extensions import db, mail
from portail.models import OutboxMessage, OutboxStatus, utcnow
from portail.queue import enqueue_many

log = logging.getLogger(__name__)

SUBJECTS = {
    "activation": "Activez votre compte",
    "activation_existing": "Votre compte existe déjà",
    "password_reset": "Réinitialisation de votre mot de passe",
    "password_changed": "Votre mot de passe a été modifié",
    "login_attack": "Tentatives de connexion sur votre compte",
    "staff_welcome": "Votre compte sur le portail famille",
    "email_change": "Confirmez votre nouvelle adresse e-mail",
    "email_changed": "Votre adresse e-mail a été modifiée",
    "dossier_decision": "Votre demande de modification du dossier famille",
    "booking_receipt": "Accusé de réception de votre demande",
    "decision_digest": "Accusé de traitement de vos demandes",
    "decision_notice": "Réponse à votre demande",
    "document_decision": "Votre pièce justificative",
    "document_expiry": "Une pièce justificative arrive à expiration",
    "invoice_issued": "Une nouvelle facture est disponible",
    "debit_rejected": "Votre prélèvement a été rejeté",
    "debit_mandate_ended": "Votre prélèvement automatique est arrêté",
    "payment_receipt": "Votre paiement en ligne est enregistré",
    "service_cancelled": "Service annulé par la mairie",
    "service_restored": "Service rétabli",
    "kitchen_headcounts": "Effectifs pour la cuisine",
    "invoice_reminder": "Relance : facture en attente de paiement",
    "waiting_offer": "Liste d'attente : une place s'est libérée",
    "waiting_ended": "Liste d'attente : pas de place pour ce jour",
}
# Mails the relay hands to the worker (within RELAY_EVERY seconds) instead of the request that
# queues them: the receipt of every click on the planning, which nobody waits for. The click then
# never waits on Redis (≈ 1 ms, a sixth of a bare page; seconds when Redis is unreachable).
# The other mails (activation, password reset…) go to the worker at commit: someone is waiting.
RELAYED = frozenset({"booking_receipt"})
RELAY_EVERY = 5  # seconds (worker.py's scheduler)
MAX_ATTEMPTS = 8
_PENDING_KEY = "portail_outbox_pending"


# Built once: a mail is one plain INSERT on the session's connection (no ORM flush in the request).
INSERT_MESSAGE = sa.insert(OutboxMessage.__table__).returning(OutboxMessage.__table__.c.id)


def queue_mail(template: str, recipient: str, **context) -> int:
    """Add a mail to the outbox in the current transaction and return its id; it is sent after commit()
    (by the relay for the RELAYED templates)."""
    if template not in SUBJECTS:
        raise ValueError(f"unknown mail template {template!r}")
    message_id = (
        db.session.connection()
        .execute(
            INSERT_MESSAGE,
            {
                "template": template,
                "recipient": recipient,
                "context": context,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "created_at": utcnow(),
            },
        )
        .scalar_one()
    )
    if template not in RELAYED:
        db.session.info.setdefault(_PENDING_KEY, []).append(message_id)
    return message_id


def queue_mails(template: str, mails: list[tuple[str, dict]]) -> dict[str, int]:
    """Add many mails (recipient, context) in one statement; return their outbox ids by recipient.

    For batch jobs (the digests): one INSERT for the batch and one SELECT for the ids, on every
    database (the ORM would insert row by row on SQLite). Recipients must be distinct.
    """
    if template not in SUBJECTS:
        raise ValueError(f"unknown mail template {template!r}")
    if not mails:
        return {}
    stamp = utcnow()
    db.session.execute(
        sa.insert(OutboxMessage.__table__),
        [
            {
                "template": template,
                "recipient": recipient,
                "context": context,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "created_at": stamp,
            }
            for recipient, context in mails
        ],
    )
    ids = dict(
        db.session.execute(
            sa.select(OutboxMessage.recipient, OutboxMessage.id).where(
                OutboxMessage.template == template,
                OutboxMessage.created_at == stamp,
                OutboxMessage.recipient.in_([recipient for recipient, _ in mails]),
            )
        ).all()
    )
    db.session.info.setdefault(_PENDING_KEY, []).extend(ids.values())
    return ids


def commit() -> None:
    """Commit the session, then hand the mails it queued to the worker and drop replaced files."""
    from portail.services import uploads

    try:
        pending = db.session.info.pop(_PENDING_KEY, [])
        db.session.commit()
    except Exception:
        rollback()
        raise
    db.session.info.pop("files_on_rollback", None)
    for name in db.session.info.pop("files_after_commit", []):
        uploads.remove(name)
    if pending:  # one Redis round trip, however many mails
        enqueue_many(
            "portail.jobs.send_mail", [((message_id,), f"mail-{message_id}") for message_id in pending]
        )


def rollback() -> None:
    """Roll back the session, forget the mails it queued and delete the files it stored."""
    from portail.services import uploads

    db.session.info.pop(_PENDING_KEY, None)
    db.session.info.pop("files_after_commit", None)
    db.session.info.pop("billing_runs_after_commit", None)  # (started by the work rolled back)
    for name in db.session.info.pop("files_on_rollback", []):
        uploads.remove(name)
    db.session.rollback()


def render(message: OutboxMessage) -> Message:
    """Build the Flask-Mail message (text and HTML) of an outbox row."""
    town = current_app.config["TOWN_NAME"]
    context = dict(message.context, town_name=town)
    return Message(
        subject=f"{town} — {SUBJECTS[message.template]}",
        recipients=[message.recipient],
        body=render_template(f"emails/{message.template}.txt", **context),
        html=render_template(f"emails/{message.template}.html", **context),
    )


def deliver(message_id: int) -> bool:
    """Send one outbox row exactly once; return True if this call sent it.

    The row is claimed with a conditional update, so concurrent jobs for the same row send once.
    On failure the row goes back to pending and the error is re-raised for RQ's retry.
    """
    with Session(db.engine) as session:
        claimed = session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.SENDING, claimed_at=utcnow())
        )
        session.commit()
        if claimed.rowcount != 1:
            return False
        message = session.get(OutboxMessage, message_id)
        try:
            email = render(message)
            mail.send(email)
        except Exception as error:
            message.attempts += 1
            message.last_error = f"{type(error).__name__}: {error}"[:1000]
            message.status = OutboxStatus.FAILED if message.attempts >= MAX_ATTEMPTS else OutboxStatus.PENDING
            message.claimed_at = None
            session.commit()
            raise
        message.attempts += 1
        message.status = OutboxStatus.SENT
        message.sent_at = utcnow()
        message.last_error = None
        session.commit()
    keep_in_dev_mailbox(email, message_id)
    return True


def keep_in_dev_mailbox(email: Message, message_id: int) -> None:
    """In development, store the sent mail as an .eml file for the /dev/mailbox page."""
    directory = current_app.config.get("DEV_MAILBOX_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
    (path / f"{stamp}-{message_id:06d}.eml").write_bytes(email.as_bytes())


def relay(now=None) -> int:
    """Hand to the worker the RELAYED mails, and the others left pending (Redis was down) or stuck
    (a worker died); return how many. Runs every RELAY_EVERY seconds."""
    now = now or utcnow()
    with Session(db.engine) as session:
        stuck = (
            OutboxMessage.status == OutboxStatus.SENDING,
            OutboxMessage.claimed_at < now - current_app.config["OUTBOX_STUCK_AFTER"],
        )
        if session.scalar(sa.select(sa.exists().where(*stuck))):  # (no write transaction every 5 s)
            session.execute(
                sa.update(OutboxMessage).where(*stuck).values(status=OutboxStatus.PENDING, claimed_at=None)
            )
            session.commit()
        ids = session.scalars(
            sa.select(OutboxMessage.id).where(
                OutboxMessage.status == OutboxStatus.PENDING,
                sa.or_(
                    OutboxMessage.template.in_(RELAYED),
                    OutboxMessage.created_at < now - current_app.config["OUTBOX_RELAY_AFTER"],
                ),
            )
        ).all()
    if ids:
        enqueue_many("portail.jobs.send_mail", [((message_id,), f"mail-{message_id}") for message_id in ids])
        log.info("relay: %d mail(s) handed to the worker", len(ids))
    return len(ids)


URL_PATTERN = re.compile(r"https?://[^\s<>\"']+")
