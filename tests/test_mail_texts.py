"""Every mail says what happened: the exact sentences and lines of the text part, and the HTML part.

Receipts and digests come from the real services (a request, a decision, a window sent); the other
mails from the context their service writes to the outbox.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.bookings import history
from portail.extensions import db
from portail.models import (
    Booking,
    BookingState,
    DigestWindow,
    LineState,
    OutboxMessage,
    Request,
    RequestKind,
    ValidationMode,
)
from portail.services import digests
from portail.services.outbox import commit, render
from tests.factories import PASSWORD, enrol, make_activity, make_family, make_user, period_form, subscribe

NOW = datetime(2026, 10, 1, 8, tzinfo=UTC)
THURSDAY, FRIDAY = date(2027, 3, 4), date(2027, 3, 5)
FOOTER = "\n--\nVille de Démo — Portail Famille\nCet e-mail a été envoyé automatiquement, merci de ne pas y répondre."


def activity(mode=ValidationMode.MANUAL, capacity=120):
    """A school-year activity open every weekday (no holidays): the dates below are always open."""
    return make_activity(
        start_date=date(2026, 9, 1),
        end_date=date(2027, 7, 3),
        validation_mode=mode,
        capacity=capacity,
    )


def parent_with_child(item, name="Léa", email="parent@example.fr"):
    family = make_family(name=f"Famille {name.upper()}", children=((name, date(2016, 3, 14)),))
    user = make_user(email=email)
    subscribe(user, family)
    enrol(family.children[0], item)
    return family, family.children[0], user


def last_mail(template):
    message = db.session.scalar(
        sa.select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id.desc())
    )
    assert message is not None, f"no {template} mail"
    return render(message)


def ask(item, child, family, user, days, kind=RequestKind.RESERVATION, period=None):
    submitted = bookings.submit(family.id, user, child, item, kind, days, NOW, "C", period=period)
    commit()
    return submitted.request_id


# --- accusés de réception --------------------------------------------------------------------------


def test_receipt_of_a_manual_request_promises_the_towns_decision(app):
    item = activity()
    family, child, user = parent_with_child(item)
    request_id = ask(item, child, family, user, [THURSDAY])
    mail = last_mail("booking_receipt")
    assert mail.body == (
        "Bonjour Camille,\n\n"
        "Nous avons bien reçu votre demande de réservation :\n"
        "Enfant : Léa\n"
        "Activité : Restauration scolaire\n"
        "Date : jeudi 4 mars 2027\n\n"
        "La mairie va l'examiner : vous recevrez un accusé de traitement (à 13 h ou à 18 h) quand elle "
        "l'aura acceptée ou refusée.\n"
        "Vous pouvez la suivre dans Mon espace citoyen → Mes demandes :\n"
        f"http://localhost:5000/mon-espace/demandes/{request_id}\n" + FOOTER
    )
    assert "Date : jeudi 4 mars 2027" in mail.html and "quand elle l'aura acceptée" in mail.html


@pytest.mark.parametrize("kind", [RequestKind.RESERVATION, RequestKind.ABSENCE])
def test_receipt_of_an_automatically_accepted_request_says_it_is_accepted(app, kind):
    item = activity(ValidationMode.AUTOMATIC)
    family, child, user = parent_with_child(item)
    if kind is RequestKind.ABSENCE:
        db.session.add(
            Booking(child_id=child.id, activity_id=item.id, day=THURSDAY, state=BookingState.RESERVED)
        )
    ask(item, child, family, user, [THURSDAY], kind)
    mail = last_mail("booking_receipt")
    asked = "d'absence" if kind is RequestKind.ABSENCE else "de réservation"
    assert f"Nous avons bien reçu votre demande {asked} :\n" in mail.body
    assert (
        "\n\nVotre demande a été acceptée automatiquement : cette activité ne demande pas de validation "
        "par la mairie.\nVous la retrouverez dans Mon espace citoyen → Mes demandes :\nhttp://" in mail.body
    )
    for text in (mail.body, mail.html):
        assert "quand" not in text and "l'aura acceptée" not in text and "examiner" not in text
    assert "<strong>Votre demande a été acceptée automatiquement</strong>" in mail.html


@pytest.mark.parametrize(
    ("accepted", "expected"),
    [
        (
            [THURSDAY],
            "Votre demande a été acceptée automatiquement pour 1 jour.\n"
            "Jours complets, non réservés : 5 mars 2027.\n",
        ),
        ([], "Votre demande n'a pas pu être acceptée : l'activité est complète (5 mars 2027).\n"),
    ],
)
def test_receipt_of_an_automatic_request_names_the_days_found_full(app, accepted, expected):
    """A day filled between the check and the request (a last-seat race) is refused "Complet"."""
    item = activity(ValidationMode.AUTOMATIC)
    family, child, user = parent_with_child(item)
    request = Request(
        family_id=family.id, child_id=child.id, activity_id=item.id, kind=RequestKind.RESERVATION
    )
    db.session.add(request)
    db.session.flush()
    decided = {LineState.ACCEPTED: accepted, LineState.REFUSED: [FRIDAY]}
    history.created(request.id, RequestKind.RESERVATION, child, item, user, [*accepted, FRIDAY], NOW, decided)
    mail = last_mail("booking_receipt")
    assert "Date : " in mail.body and "\n\n" + expected in mail.body
    assert "quand" not in mail.body and "examiner" not in mail.body


def test_period_sent_without_javascript_lists_each_weekday_once(app, client):
    """The no-JS form is posted back to the preview's URL, whose query repeats the weekdays."""
    item = make_activity()
    family, child, _user = parent_with_child(item)
    db.session.commit()
    client.post("/connexion", data={"email": "parent@example.fr", "password": PASSWORD})
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=21 - today.weekday())
    form = period_form(child, item, monday, monday + timedelta(days=11))
    sent = client.post(f"/famille/{family.id}/planning/periode", query_string=form, data=form)
    assert sent.status_code == 302
    assert db.session.scalar(sa.select(Request.period_weekdays)) == "14"
    mail = last_mail("booking_receipt")
    assert "\nJours : lundi, jeudi\nNombre de jours demandés : 4\n" in mail.body
    assert "Jours : lundi, jeudi</li>" in mail.html


# --- accusé de traitement --------------------------------------------------------------------------


def paris(*parts):
    from portail.formatting import PARIS

    return datetime(*parts, tzinfo=PARIS).astimezone(UTC)


def test_digest_text_puts_each_decision_on_its_own_lines(app):
    item = activity()
    family, child, user = parent_with_child(item)
    agent = make_user(email="agent@example.fr", first_name="Nadia")
    first = db.session.get(Request, ask(item, child, family, user, [THURSDAY, FRIDAY]))
    second = db.session.get(
        Request, ask(item, child, family, user, [date(2027, 3, 1)], RequestKind.RESERVATION)
    )
    bookings.decide([first.lines[0].id], True, agent, paris(2027, 1, 12, 9))
    bookings.decide(
        [first.lines[1].id, second.lines[0].id],
        False,
        agent,
        paris(2027, 1, 12, 12, 45),
        reason="Complet",
        message="Plus de place ces jours-là.",
    )
    commit()
    digests.send_window(date(2027, 1, 12), DigestWindow.NOON, now=paris(2027, 1, 12, 13, 1))
    mail = last_mail("decision_digest")
    assert mail.body == (
        "Bonjour Camille,\n\n"
        "Voici les réponses de la mairie à vos demandes (entre 18 h la veille et 13 h, le 12 janvier 2027) :\n\n"
        "- Léa — Restauration scolaire — Réservation REFUSÉE\n"
        "  Date : 1er mars 2027\n"
        "  Motif : Complet\n"
        "  Message : Plus de place ces jours-là.\n\n"
        "- Léa — Restauration scolaire — Réservation ACCEPTÉE\n"
        "  Date : 4 mars 2027\n\n"
        "- Léa — Restauration scolaire — Réservation REFUSÉE\n"
        "  Date : 5 mars 2027\n"
        "  Motif : Complet\n"
        "  Message : Plus de place ces jours-là.\n\n"
        "Vos demandes et leur historique : http://localhost:5000/mon-espace/demandes\n" + FOOTER
    )
    assert mail.html.count("<li>") == 3 and "Date : 1er mars 2027" in mail.html


# --- the other mails, from the context their service writes --------------------------------------

LINK = "http://localhost:5000/lien"
OTHER_MAILS = [
    (
        "activation",
        {"first_name": "Camille", "link": LINK, "hours": 48},
        "Bonjour Camille,\n\n"
        "Votre compte sur le Portail Famille de la Ville de Démo a été créé.\n"
        "Pour l'activer, ouvrez ce lien (valable 48 heures, utilisable une seule fois) :\n\n"
        f"{LINK}\n\n"
        "Si vous n'êtes pas à l'origine de cette demande, ignorez cet e-mail : le compte sera supprimé dans 7 jours.\n",
    ),
    (
        "activation_existing",
        {"first_name": "Camille", "login_link": LINK + "/c", "reset_link": LINK + "/m"},
        "Bonjour Camille,\n\n"
        "Quelqu'un (vous, peut-être) a voulu créer un compte sur le Portail Famille de la Ville de Démo avec "
        "votre adresse e-mail, mais vous avez déjà un compte.\n\n"
        f"Pour vous connecter : {LINK}/c\nMot de passe oublié : {LINK}/m\n\n"
        "Si vous n'êtes pas à l'origine de cette demande, ignorez cet e-mail.\n",
    ),
    (
        "password_reset",
        {"first_name": "Camille", "link": LINK, "hours": 24},
        "Bonjour Camille,\n\n"
        "Vous avez demandé à changer le mot de passe de votre compte du Portail Famille.\n"
        "Ouvrez ce lien pour choisir un nouveau mot de passe (valable 24 heures, utilisable une seule fois) :\n\n"
        f"{LINK}\n\n"
        "Si vous n'êtes pas à l'origine de cette demande, ignorez cet e-mail : votre mot de passe reste inchangé.\n",
    ),
    (
        "password_changed",
        {"first_name": "Camille", "reset_link": LINK},
        "Bonjour Camille,\n\n"
        "Le mot de passe de votre compte du Portail Famille vient d'être modifié. Toutes vos sessions "
        "ouvertes ont été fermées.\n\n"
        f"Si vous n'êtes pas à l'origine de ce changement, choisissez tout de suite un nouveau mot de passe : {LINK}\n",
    ),
    (
        "login_attack",
        {"first_name": "Camille", "reset_link": LINK},
        "Bonjour Camille,\n\n"
        "De nombreuses tentatives de connexion avec un mot de passe erroné visent votre compte du Portail "
        "Famille. Elles ont échoué et sont désormais freinées.\n\n"
        "Sur un appareil où vous vous êtes déjà connecté, vous pouvez vous connecter normalement. Si la "
        f"connexion vous est refusée ailleurs, choisissez un nouveau mot de passe : {LINK}\n\n"
        "Si ces tentatives venaient de vous, vous n'avez rien à faire.\n",
    ),
    (
        "email_change",
        {"first_name": "Camille", "link": LINK, "hours": 48},
        "Bonjour Camille,\n\n"
        "Vous avez demandé à utiliser cette adresse pour vous connecter au Portail Famille de la Ville de Démo.\n"
        "Pour confirmer, ouvrez ce lien (valable 48 heures, utilisable une seule fois) :\n\n"
        f"{LINK}\n\n"
        "Si vous n'êtes pas à l'origine de cette demande, ignorez cet e-mail.\n",
    ),
    (
        "email_changed",
        {"first_name": "Camille", "new_email": "camille@nouveau.fr"},
        "Bonjour Camille,\n\n"
        "L'adresse de connexion de votre compte du Portail Famille est désormais camille@nouveau.fr.\n"
        "Toutes vos sessions ouvertes ont été fermées.\n\n"
        "Si vous n'êtes pas à l'origine de ce changement, contactez sans attendre le service enfance de la mairie.\n",
    ),
    (
        "staff_welcome",
        {"first_name": "Nadia", "role": "Gestionnaire", "link": LINK, "hours": 48},
        "Bonjour Nadia,\n\n"
        "Un compte « Gestionnaire » vous a été créé sur le Portail Famille de la Ville de Démo.\n"
        "Choisissez votre mot de passe avec ce lien (valable 48 heures, utilisable une seule fois) :\n\n"
        f"{LINK}\n",
    ),
    (
        "dossier_decision",
        {
            "first_name": "Camille",
            "family": "Famille MARTIN",
            "subject_of_change": "Adresse de Claire MARTIN : 8 avenue du Parc, 75014 Paris",
            "accepted": False,
            "reason": "Justificatif manquant",
            "link": LINK,
        },
        "Bonjour Camille,\n\n"
        "Votre demande de modification du dossier Famille MARTIN a été refusée par la mairie :\n"
        "Adresse de Claire MARTIN : 8 avenue du Parc, 75014 Paris\n"
        "Motif : Justificatif manquant\n\n"
        f"Historique de votre dossier : {LINK}\n",
    ),
    (
        "document_decision",
        {
            "first_name": "Camille",
            "document": "Attestation d'assurance",
            "child": "Tom",
            "accepted": True,
            "valid_until": "2027-09-01",
            "reason": None,
            "link": LINK,
        },
        "Bonjour Camille,\n\n"
        "Votre pièce justificative « Attestation d'assurance » pour Tom a été validée par la mairie.\n"
        "Elle est valable jusqu'au 1er septembre 2027.\n\n"
        f"Vos pièces justificatives : {LINK}\n",
    ),
    (
        "document_decision",
        {
            "first_name": "Camille",
            "document": "Attestation d'assurance",
            "child": "Tom",
            "accepted": False,
            "valid_until": None,
            "reason": "Document périmé",
            "link": LINK,
        },
        "Bonjour Camille,\n\n"
        "Votre pièce justificative « Attestation d'assurance » pour Tom a été refusée par la mairie.\n"
        "Motif : Document périmé\n"
        "Vous pouvez envoyer un nouveau fichier depuis l'Espace Famille.\n\n"
        f"Vos pièces justificatives : {LINK}\n",
    ),
    (
        "document_expiry",
        {
            "first_name": "Camille",
            "document": "Attestation CAF",
            "child": None,
            "valid_until": "2026-12-01",
            "link": LINK,
        },
        "Bonjour Camille,\n\n"
        "Votre pièce justificative « Attestation CAF » arrive à expiration : elle est valable jusqu'au "
        "1er décembre 2026.\n"
        f"Pensez à envoyer un document à jour depuis l'Espace Famille : {LINK}\n",
    ),
    (
        "invoice_issued",
        {
            "first_name": "Camille",
            "month": "novembre 2026",
            "link": LINK,
            "documents": [
                {"credit_note": True, "number": "AV2026-000001", "amount": "12,00 €", "due": None},
                {"credit_note": False, "number": "FA2026-000002", "amount": "15,00 €", "due": "2027-01-01"},
            ],
        },
        "Bonjour Camille,\n\n"
        "De nouveaux documents de facturation sont disponibles pour novembre 2026 :\n"
        "- Avoir n° AV2026-000001 : 12,00 €\n"
        "- Facture n° FA2026-000002 : 15,00 €, à régler avant le 1er janvier 2027\n\n"
        f"Consultez-les et téléchargez-les dans votre Espace Facturation : {LINK}\n",
    ),
    (
        "service_cancelled",
        {
            "first_name": "Camille",
            "activity": "Restauration scolaire",
            "site": "Groupe scolaire Jules Ferry",
            "reason": "Grève",
            "period": "du 30 novembre au 1er décembre 2026",
            "credit": True,
            "link": LINK,
            "children": [
                {"name": "Léa MARTIN", "days": ["2026-11-30", "2026-12-01"]},
                {"name": "Tom MARTIN", "days": ["2026-11-30"]},
            ],
        },
        "Bonjour Camille,\n\n"
        "Le service « Restauration scolaire » (Groupe scolaire Jules Ferry) est annulé par la mairie du 30 "
        "novembre au 1er décembre 2026.\n"
        "Motif : Grève\n\n"
        "Léa MARTIN : lundi 30 novembre 2026, mardi 1er décembre 2026\n"
        "Tom MARTIN : lundi 30 novembre 2026\n\n"
        "Ces jours ne vous seront pas facturés. Un avoir sera établi pour le mois déjà facturé.\n\n"
        f"Votre planning : {LINK}\n",
    ),
    (
        "service_restored",
        {
            "first_name": "Camille",
            "activity": "Restauration scolaire",
            "site": None,
            "reason": "Enseignant absent",
            "period": "le lundi 7 décembre 2026",
            "credit": False,
            "link": LINK,
            "children": [{"name": "Léa MARTIN", "days": ["2026-12-07"]}],
        },
        "Bonjour Camille,\n\n"
        "Le service « Restauration scolaire » annoncé comme annulé le lundi 7 décembre 2026 (Enseignant "
        "absent) est finalement assuré. Les réservations de vos enfants sont rétablies :\n\n"
        "Léa MARTIN : lundi 7 décembre 2026\n\n"
        "Ce jour sera facturé comme prévu.\n\n"
        f"Votre planning : {LINK}\n",
    ),
]
# Direct debit (services.billing.sepa): the pre-notification in the invoice mail, a reject, a mandate ended.
OTHER_MAILS += [
    (
        "invoice_issued",
        {
            "first_name": "Camille",
            "month": "novembre 2026",
            "link": LINK,
            "documents": [
                {
                    "credit_note": False,
                    "number": "FA2026-000002",
                    "amount": "15,00 €",
                    "due": "2027-01-01",
                    "debit": {
                        "on": "2027-01-04",
                        "iban": "FR76 •••• •••• •••• 0189",
                        "reference": "PF-000042-01",
                    },
                },
            ],
        },
        "Bonjour Camille,\n\n"
        "Un nouveau document de facturation est disponible pour novembre 2026 :\n"
        "- Facture n° FA2026-000002 : 15,00 €, prélevée le 4 janvier 2027 sur le compte FR76 •••• •••• •••• "
        "0189 (mandat de prélèvement PF-000042-01) : vous n'avez rien à faire.\n\n"
        f"Consultez-le et téléchargez-le dans votre Espace Facturation : {LINK}\n",
    ),
    (
        "debit_rejected",
        {
            "first_name": "Camille",
            "number": "FA2026-000002",
            "amount": "15,00 €",
            "collection_date": "2027-01-04",
            "reason": "Compte clôturé",
            "mandate_ended": True,
            "link": LINK,
        },
        "Bonjour Camille,\n\n"
        "Le prélèvement de 15,00 € prévu le 4 janvier 2027 pour la facture n° FA2026-000002 a été rejeté par "
        "votre banque.\n"
        "Motif : Compte clôturé\n\n"
        "La facture est de nouveau à payer. Vous pouvez la régler depuis votre Espace Facturation ou auprès du "
        "service.\n"
        "Votre mandat de prélèvement a pris fin : les prochaines factures ne seront plus prélevées. Pour "
        "reprendre le prélèvement, choisissez-le à nouveau dans votre Espace Facturation avec un compte valide.\n\n"
        f"La facture : {LINK}\n",
    ),
    (
        "debit_mandate_ended",
        {
            "first_name": "Camille",
            "reference": "PF-000042-01",
            "iban": "FR76 •••• •••• •••• 0189",
            "link": LINK,
        },
        "Bonjour Camille,\n\n"
        "Les coordonnées bancaires de votre dossier ont changé : le mandat de prélèvement PF-000042-01 signé pour "
        "le compte FR76 •••• •••• •••• 0189 a pris fin, car il ne vaut que pour ce compte.\n"
        "Vos prochaines factures ne seront plus prélevées. Pour continuer à payer par prélèvement avec le nouveau "
        "compte, choisissez à nouveau le prélèvement dans votre Espace Facturation.\n\n"
        f"Votre Espace Facturation : {LINK}\n",
    ),
]


OTHER_MAILS.append(
    (
        "payment_receipt",
        {
            "first_name": "Camille",
            "amount": "40,80 €",
            "paid_on": "2026-12-03",
            "reference": "PF0123456789ABCDEF0123",
            "authorisation": "TEST000001",
            "invoices": [
                {"number": "FA2026-000001", "amount": "20,40 €"},
                {"number": "FA2026-000002", "amount": "20,40 €"},
            ],
            "link": "https://famille.ville.fr/facturation/",
        },
        "Bonjour Camille,\n\n"
        "Votre paiement en ligne de 40,80 € du 3 décembre 2026 est enregistré.\n"
        "- Facture n° FA2026-000001 : 20,40 €\n"
        "- Facture n° FA2026-000002 : 20,40 €\n\n"
        "Référence du paiement : PF0123456789ABCDEF0123\n"
        "N° d'autorisation de la banque : TEST000001\n\n"
        "Ces factures sont désormais payées. Votre Espace Facturation : https://famille.ville.fr/facturation/\n",
    )
)


OTHER_MAILS.append(
    (
        "decision_notice",
        {
            "first_name": "Camille",
            "decisions": [
                {
                    "child": "Léa",
                    "activity": "Restauration scolaire",
                    "kind": "Réservation",
                    "accepted": False,
                    "reason": "Complet",
                    "message": None,
                    "days": ["2027-03-04", "2027-03-05"],
                }
            ],
            "link": "https://famille.ville.fr/mon-espace/demandes",
        },
        "Bonjour Camille,\n\n"
        "Voici la réponse de la mairie à votre demande :\n\n"
        "- Léa — Restauration scolaire — Réservation REFUSÉE\n"
        "  Dates : 4 mars 2027, 5 mars 2027\n"
        "  Motif : Complet\n\n"
        "Vos demandes et leur historique : https://famille.ville.fr/mon-espace/demandes\n",
    )
)


_WAITING = {
    "first_name": "Camille",
    "child": "Léa",
    "activity": "Atelier théâtre",
    "day": "2027-03-03",
    "link": "https://famille.ville.fr/mon-espace/demandes/12",
    "planning_link": "https://famille.ville.fr/famille/4/planning?jour=2027-03-03",
}
OTHER_MAILS += [
    (
        "waiting_offer",
        _WAITING | {"manual": False, "until": "mardi 2 mars à 18:00"},
        "Bonjour Camille,\n\n"
        "Une place s'est libérée sur la liste d'attente :\n"
        "Enfant : Léa\nActivité : Atelier théâtre\nDate : mercredi 3 mars 2027\n\n"
        "La place vous est réservée jusqu'au mardi 2 mars à 18:00. Confirmez-la sur le planning avant cette "
        "heure ; sans réponse, elle sera proposée à la famille suivante.\n\n"
        "Le planning de ce jour : https://famille.ville.fr/famille/4/planning?jour=2027-03-03\n"
        "Votre demande : https://famille.ville.fr/mon-espace/demandes/12\n",
    ),
    (
        "waiting_ended",
        _WAITING | {"expired": True},
        "Bonjour Camille,\n\n"
        "La place proposée à Léa pour Atelier théâtre le mercredi 3 mars 2027 n'a pas été confirmée à temps : "
        "elle est proposée à la famille suivante, et ce jour n'est pas réservé.\n\n"
        "Votre demande : https://famille.ville.fr/mon-espace/demandes/12\n",
    ),
]


@pytest.mark.parametrize(("template", "context", "body"), OTHER_MAILS, ids=[m[0] for m in OTHER_MAILS])
def test_mail_text_says_what_happened(app, template, context, body):
    with app.test_request_context():
        mail = render(OutboxMessage(template=template, recipient="camille@example.fr", context=context))
    assert mail.body == body + FOOTER
    assert mail.html.startswith("<!doctype html>") and "Bonjour" in mail.html
    for line in body.splitlines():  # every date and figure of the text is in the HTML part too
        for word in ("1er", "2026", "2027", "Motif", "48 heures", "24 heures"):
            if word in line:
                assert word in mail.html, (word, template)


def test_every_mail_template_is_tested():
    from portail.services.outbox import SUBJECTS

    tested = {template for template, _c, _b in OTHER_MAILS} | {
        "booking_receipt",
        "decision_digest",
        "kitchen_headcounts",
        "invoice_reminder",  # tests/test_reminders.py (both steps, word for word)
    }
    assert tested == set(SUBJECTS)
