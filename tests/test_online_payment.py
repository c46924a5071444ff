"""Paying online (issue 18): PayFiP's request parameters and its notification verified with PayFiP
itself (a PayFiP web service played by a local HTTP server), the test bank's signed notification
(good, tampered, replayed, wrong amount, unknown payment), a notification sent twice at once pays
once, refusal and abandonment pay nothing, the browser's return pays nothing, the parent's pages
and the agents' list and reconciliation export."""

import csv
import io
import logging
import re
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa

from config import ProductionConfig
from portail.extensions import db
from portail.models import (
    Invoice,
    OnlinePayment,
    OnlineState,
    OutboxMessage,
    Payment,
    PaymentMethod,
    Role,
    utcnow,
)
from portail.services import billing
from portail.services.billing import online, providers
from portail.services.outbox import commit
from tests.factories import book, canteen, make_family, make_user, priced, run_month, subscribe
from tests.support import fire, tabs

pytestmark = pytest.mark.both_dbs

DAYS = [date(2026, 10, d) for d in (1, 2, 5, 6)]
NOTIFY = "/paiement/notification/test"


@pytest.fixture
def billed(app):
    """Two months billed for the MARTIN family (a parent subscribed), one invoice for another family."""
    activity = priced(canteen())
    family = make_family(name="Famille MARTIN", children=(("Léa", date(2016, 3, 14)),))
    other = make_family(name="Famille DURAND", children=(("Hugo", date(2016, 5, 2)),))
    parent = make_user(email="parent@example.fr", first_name="Élodie")
    subscribe(parent, family)
    book(family.children[0], activity, DAYS)
    book(family.children[0], activity, [date(2026, 9, 14), date(2026, 9, 15)])
    book(other.children[0], activity, DAYS[:1])
    commit()
    run_month()
    run_month(date(2026, 9, 1))
    invoices = db.session.scalars(
        sa.select(Invoice).where(Invoice.family_id == family.id).order_by(Invoice.month)
    ).all()
    foreign = db.session.scalar(sa.select(Invoice).where(Invoice.family_id == other.id))
    return family, invoices, foreign


def state(invoice) -> str:
    db.session.expire_all()
    return billing.state_now(db.session.get(Invoice, invoice.id), utcnow())[1]


def started(client, auth, family, invoice=None) -> OnlinePayment:
    auth.login("parent@example.fr")
    response = client.post(f"/facturation/{family.id}/payer", data={"facture": invoice.id} if invoice else {})
    assert response.status_code == 302, response.get_data(as_text=True)
    reference = response.location.rsplit("/", 1)[-1]
    assert response.location.endswith(f"/facturation/banque-test/{reference}")
    return db.session.scalar(sa.select(OnlinePayment).where(OnlinePayment.reference == reference))


def signed(app, payment, code="P", amount=None, **changes) -> dict:
    bank = providers.TestBank(app.config["SECRET_KEY"])
    fields = bank.notification_fields(
        payment, code, payment.amount_cents if amount is None else amount, utcnow()
    )
    return fields | changes


def payments_of(invoice) -> list[Payment]:
    db.session.expire_all()
    return db.session.scalars(sa.select(Payment).where(Payment.invoice_id == invoice.id)).all()


# --- the test bank, end to end ------------------------------------------------------------------


def test_a_parent_pays_an_invoice_with_the_test_bank(client, auth, billed, mails):
    family, (september, october), _ = billed
    payment = started(client, auth, family, october)
    assert (payment.state, payment.amount_cents, payment.provider) == (
        OnlineState.PENDING,
        october.total_cents,
        "test",
    )
    assert [item.invoice_id for item in payment.items] == [october.id]
    assert state(october) == "Paiement en cours"  # while the bank's page is open
    page = client.get(f"/facturation/banque-test/{payment.reference}").get_data(as_text=True)
    assert payment.reference in page and billing.euros(october.total_cents).replace(
        "\xa0", " "
    ) in page.replace("\xa0", " ")

    response = client.post(f"/facturation/banque-test/{payment.reference}", data={"resultat": "P"})
    assert response.status_code == 302
    assert response.location.endswith(f"/facturation/{family.id}/paiements/{payment.reference}")
    back = client.get(response.location).get_data(as_text=True)
    assert "Paiement accepté" in back
    assert state(october) == "Payée" and state(september) == "À payer"
    (paid,) = payments_of(october)
    assert (paid.method, paid.amount_cents, paid.online_payment_id) == (
        PaymentMethod.ONLINE,
        october.total_cents,
        payment.id,
    )
    receipt = [m for m in mails if "paiement en ligne" in m.subject]
    assert [m.recipients for m in receipt] == [["parent@example.fr"]]
    assert payment.reference in receipt[0].body and october.number in receipt[0].body
    home = client.get("/facturation/").get_data(as_text=True)
    assert f'name="facture" value="{october.id}"' not in home  # nothing left to pay on it
    assert f'name="facture" value="{september.id}"' in home


def test_pay_everything_due_pays_each_invoice_what_is_left(client, auth, billed, app):
    family, (september, october), _ = billed
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    billing.record_payment(september, date(2026, 11, 2), 100, PaymentMethod.CHEQUE, agent)
    commit()
    payment = started(client, auth, family)
    left = {item.invoice_id: item.amount_cents for item in payment.items}
    assert left == {september.id: september.total_cents - 100, october.id: october.total_cents}
    assert payment.amount_cents == sum(left.values())
    assert client.post(NOTIFY, data=signed(app, payment)).status_code == 200
    assert state(september) == state(october) == "Payée"
    assert billing.balance_cents(family.id) == 0


@pytest.mark.parametrize(("code", "words"), [("R", "Paiement refusé"), ("A", "Paiement abandonné")])
def test_refusal_or_abandonment_pays_nothing_and_says_so(client, auth, billed, mails, code, words):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    response = client.post(f"/facturation/banque-test/{payment.reference}", data={"resultat": code})
    page = client.get(response.location).get_data(as_text=True)
    assert words in page and "Aucune somme n'a été débitée" in page
    assert payments_of(october) == [] and state(october) == "À payer"
    assert not [m for m in mails if "paiement en ligne" in m.subject]
    again = started(client, auth, family, october)  # the parent may try again at once
    assert again.id != payment.id


def test_the_browsers_return_alone_pays_nothing(client, auth, billed):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    page = client.get(
        f"/facturation/{family.id}/paiements/{payment.reference}?resultrans=P&montant={payment.amount_cents}"
    ).get_data(as_text=True)
    assert "Paiement en cours" in page and 'hx-trigger="every 3s"' in page
    assert payments_of(october) == [] and state(october) == "Paiement en cours"


def test_a_pending_payment_stops_showing_after_its_time(client, auth, billed, app):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    payment.created_at = utcnow() - billing.payments.PENDING_FOR - timedelta(seconds=1)
    commit()
    assert state(october) == "À payer"
    assert started(client, auth, family, october).id != payment.id


# --- the notification: verified, idempotent -----------------------------------------------------


def test_a_tampered_notification_is_refused_and_pays_nothing(client, auth, billed, app):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    assert client.post(NOTIFY, data=signed(app, payment, "A") | {"resultrans": "P"}).status_code == 400
    forged = signed(app, payment)
    forged["montant"] = "1"
    assert client.post(NOTIFY, data=forged).status_code == 400
    assert client.post(NOTIFY, data=signed(app, payment) | {"signature": "0" * 64}).status_code == 400
    assert (
        client.post(
            NOTIFY, data={k: v for k, v in signed(app, payment).items() if k != "signature"}
        ).status_code
        == 400
    )
    assert (
        client.post("/paiement/notification/payfip", data={"idop": "x"}).status_code == 400
    )  # not configured
    assert payments_of(october) == []
    db.session.expire_all()
    assert db.session.get(OnlinePayment, payment.id).state is OnlineState.PENDING


def test_a_notification_for_an_unknown_payment_is_refused(client, app, billed):
    class Ghost:
        id, reference = 999, "PFGHOST0000000000000000"

    assert client.post(NOTIFY, data=signed(app, Ghost, amount=1000)).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0


def test_a_notification_of_another_amount_pays_nothing_and_is_kept_for_the_agents(
    client, auth, billed, app, caplog
):
    caplog.set_level(logging.WARNING, logger="portail.services.billing.online")
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    assert (
        client.post(NOTIFY, data=signed(app, payment, amount=payment.amount_cents - 100)).status_code == 200
    )
    db.session.expire_all()
    assert db.session.get(OnlinePayment, payment.id).state is OnlineState.MISMATCH
    assert payments_of(october) == [] and "nothing paid" in caplog.text
    assert (
        client.post(NOTIFY, data=signed(app, payment)).status_code == 200
    )  # a later "right" one: still to check
    assert payments_of(october) == []
    page = client.get(f"/facturation/{family.id}/paiements/{payment.reference}").get_data(as_text=True)
    assert "Paiement à vérifier" in page


def test_a_notification_replayed_pays_once_and_mails_once(client, auth, billed, app, mails):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    notification = signed(app, payment)
    for _ in range(3):
        assert client.post(NOTIFY, data=notification).status_code == 200
    assert len(payments_of(october)) == 1
    assert len([m for m in mails if "paiement en ligne" in m.subject]) == 1
    # a refusal replayed after the payment changes nothing
    assert client.post(NOTIFY, data=signed(app, payment, "R")).status_code == 200
    db.session.expire_all()
    assert db.session.get(OnlinePayment, payment.id).state is OnlineState.PAID


def test_a_payment_notified_after_a_refusal_is_recorded(client, auth, billed, app):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    assert client.post(NOTIFY, data=signed(app, payment, "A")).status_code == 200
    assert client.post(NOTIFY, data=signed(app, payment, "P")).status_code == 200  # the money was taken
    assert len(payments_of(october)) == 1 and state(october) == "Payée"


def test_a_notification_sent_twice_at_once_pays_once(app, client, auth, billed):
    family, (september, october), _ = billed
    payment = started(client, auth, family)
    notification = signed(app, payment)
    answers = fire([app.test_client(), app.test_client()], NOTIFY, data=notification)
    assert [status for status, *_ in answers] == [200, 200]
    assert len(payments_of(september)) == len(payments_of(october)) == 1
    receipts = db.session.scalar(
        sa.select(sa.func.count(OutboxMessage.id)).where(OutboxMessage.template == "payment_receipt")
    )
    assert receipts == 1


def test_pay_clicked_twice_at_once_is_one_payment_and_both_go_to_its_bank_page(app, client, auth, billed):
    family, (september, october), _ = billed
    auth.login("parent@example.fr")
    for data in ({"facture": october.id}, {}):  # one invoice, then everything else due
        answers = fire(tabs(app, client), f"/facturation/{family.id}/payer", data=data)
        assert len({location for _status, _text, location in answers}) == 1
        assert "/facturation/banque-test/" in answers[0][2]
    payments = db.session.scalars(sa.select(OnlinePayment).order_by(OnlinePayment.id)).all()
    assert [[item.invoice_id for item in p.items] for p in payments] == [[october.id], [september.id]]


# --- the parent's pages: access, bad input ---------------------------------------------------------


def test_another_familys_invoice_or_payment_is_404(client, auth, billed, app):
    family, (_, october), foreign = billed
    auth.login("parent@example.fr")
    assert client.post(f"/facturation/{family.id}/payer", data={"facture": foreign.id}).status_code == 404
    assert client.post(f"/facturation/{foreign.family_id}/payer", data={}).status_code == 404
    assert client.post(f"/facturation/{family.id}/payer", data={"facture": "abc"}).status_code == 404
    payment = started(client, auth, family, october)
    assert client.get(f"/facturation/{foreign.family_id}/paiements/{payment.reference}").status_code == 404
    assert client.get(f"/facturation/{family.id}/paiements/PFNOTHING").status_code == 404
    assert db.session.scalar(sa.select(sa.func.count(OnlinePayment.id))) == 1


def test_paying_an_invoice_already_paid_says_why_in_french(client, auth, billed):
    family, (_, october), _ = billed
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    billing.record_payment(october, date(2026, 11, 2), october.total_cents, PaymentMethod.CHEQUE, agent)
    commit()
    auth.login("parent@example.fr")
    response = client.post(
        f"/facturation/{family.id}/payer", data={"facture": october.id}, follow_redirects=True
    )
    assert "ne peut pas être payée en ligne" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(OnlinePayment.id))) == 0


def test_no_online_payment_when_the_town_has_none(client, auth, billed, app):
    family, (_, october), _ = billed
    app.config["PAYMENT_PROVIDER"] = ""
    auth.login("parent@example.fr")
    assert "Payer en ligne" not in client.get("/facturation/").get_data(as_text=True)
    assert client.post(f"/facturation/{family.id}/payer", data={"facture": october.id}).status_code == 404
    assert client.get("/facturation/banque-test/PFX").status_code == 404


def test_the_test_bank_is_refused_in_production(monkeypatch):
    for name, value in {
        "SECRET_KEY": "x",
        "DATABASE_URL": "postgresql://x",
        "REDIS_URL": "redis://x",
        "MAIL_SERVER": "x",
        "PUBLIC_URL": "https://x",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PORTAIL_PAYMENT_PROVIDER", "test")
    with pytest.raises(RuntimeError, match="test bank"):
        ProductionConfig.check()
    monkeypatch.setenv("PORTAIL_PAYMENT_PROVIDER", "payfip")
    with pytest.raises(RuntimeError, match="PAYFIP_NUMCLI"):
        ProductionConfig.check()
    monkeypatch.setenv("PAYFIP_NUMCLI", "012345")
    ProductionConfig.check()


# --- the agents' list and reconciliation -----------------------------------------------------------


def test_agents_see_the_days_online_payments_and_export_the_reconciliation(client, auth, billed, app):
    family, (september, october), _ = billed
    paid = started(client, auth, family, october)
    client.post(NOTIFY, data=signed(app, paid))
    refused = started(client, auth, family, september)
    client.post(NOTIFY, data=signed(app, refused, "R"))
    auth.logout()
    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    auth.login("agent@example.fr")
    page = client.get("/gestion/facturation/paiements-en-ligne").get_data(as_text=True)
    assert paid.reference in page and refused.reference in page
    assert f"TEST{paid.id:06d}" in page and "Refusé par la banque" in page
    invoice_page = client.get(f"/gestion/facturation/factures/{october.id}").get_data(as_text=True)
    assert paid.reference in invoice_page and "Paiement en ligne" in invoice_page
    response = client.get("/gestion/facturation/paiements-en-ligne/rapprochement.csv")
    assert response.status_code == 200 and "no-store" in response.headers["Cache-Control"]
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == online.RECONCILIATION_HEADER
    by_reference = {row[2]: row for row in rows[1:-1]}
    assert by_reference[paid.reference][7] == october.number
    assert by_reference[paid.reference][8] == f"{october.total_cents / 100:.2f}".replace(".", ",")
    assert rows[-1][0] == "Total encaissé" and rows[-1][8] == by_reference[paid.reference][8]
    yesterday = (billing.today_in_paris(utcnow()) - timedelta(days=1)).isoformat()
    assert paid.reference not in client.get(
        f"/gestion/facturation/paiements-en-ligne?jour={yesterday}"
    ).get_data(as_text=True)
    auth.logout()
    auth.login("parent@example.fr")
    assert client.get("/gestion/facturation/paiements-en-ligne").status_code == 403


# --- PayFiP, against a PayFiP web service played by a local server ----------------------------------


class FakePayFiP:
    """PayFiP's web service: creerPaiementSecurise gives an idOp; recupererDetailPaiementSecurise
    gives what `details[idOp]` holds (a SOAP fault for an unknown idOp)."""

    def __init__(self):
        self.created: list[dict] = []
        self.details: dict[str, dict] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                root = ElementTree.fromstring(body)
                operation = next(e for e in root.iter() if e.tag.endswith("PaiementSecurise"))
                args = {child.tag: child.text or "" for child in operation.find("arg0")}
                if operation.tag.endswith("creerPaiementSecurise"):
                    fake.created.append(args)
                    answer = {"idOp": f"OP{len(fake.created):04d}"}
                elif args.get("idOp") in fake.details:
                    answer = fake.details[args["idOp"]]
                else:
                    self._reply(500, "<soap:Fault><faultstring>idOp incorrect</faultstring></soap:Fault>")
                    return
                fields = "".join(f"<{k}>{v}</{k}>" for k, v in answer.items())
                self._reply(200, f"<ns2:response><return>{fields}</return></ns2:response>")

            def _reply(self, status, inner):
                body = (
                    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns2="urn:x">'
                    f"<soap:Body>{inner}</soap:Body></soap:Envelope>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/securite"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def payfip(app):
    fake = FakePayFiP()
    app.config.update(
        PAYMENT_PROVIDER="payfip",
        PAYFIP_NUMCLI="012345",
        PAYFIP_SAISIE="T",
        PAYFIP_WS_URL=fake.url,
        PAYFIP_PAY_URL="https://www.payfip.gouv.fr/tpa/paiementws.web",
        PUBLIC_URL="https://portail.ville-demo.fr",
    )
    yield fake
    fake.stop()


def test_payfip_is_asked_with_its_documented_parameters(client, auth, billed, payfip):
    family, (_, october), _ = billed
    auth.login("parent@example.fr")
    response = client.post(f"/facturation/{family.id}/payer", data={"facture": october.id})
    assert response.status_code == 302
    assert response.location == "https://www.payfip.gouv.fr/tpa/paiementws.web?idop=OP0001"
    payment = db.session.scalar(sa.select(OnlinePayment))
    assert (payment.provider, payment.provider_token) == ("payfip", "OP0001")
    (sent,) = payfip.created
    assert sent == {
        "numcli": "012345",
        "exer": str(billing.today_in_paris(payment.created_at).year),
        "refdet": payment.reference,
        "objet": f"Ville de Demo Facture {october.number.replace('-', ' ')}",
        "montant": str(october.total_cents),
        "mel": "parent@example.fr",
        "urlnotif": "https://portail.ville-demo.fr/paiement/notification/payfip",
        "urlredirect": f"https://portail.ville-demo.fr/facturation/{family.id}/paiements/{payment.reference}",
        "saisie": "T",
    }
    assert re.fullmatch(r"[A-Z0-9]{6,30}", payment.reference)


def details(payment, **changes) -> dict:
    return {
        "dattrans": "03112026",
        "exer": "2026",
        "heurtrans": "1412",
        "idOp": payment.provider_token,
        "mel": payment.email,
        "montant": str(payment.amount_cents),
        "numauto": "112233",
        "numcli": "012345",
        "objet": "x",
        "refdet": payment.reference,
        "resultrans": "P",
        "saisie": "T",
    } | changes


def test_payfip_notification_is_verified_with_payfip(client, auth, billed, payfip, mails):
    family, (_, october), _ = billed
    auth.login("parent@example.fr")
    client.post(f"/facturation/{family.id}/payer", data={"facture": october.id})
    payment = db.session.scalar(sa.select(OnlinePayment))
    auth.logout()
    notify = "/paiement/notification/payfip"
    # an idOp PayFiP does not know, another client number, another mode: refused, nothing paid
    assert client.post(notify, data={"idop": "OP9999"}).status_code == 400
    payfip.details["OP0001"] = details(payment, numcli="999999")
    assert client.post(notify, data={"idop": "OP0001"}).status_code == 400
    payfip.details["OP0001"] = details(payment, saisie="W")
    assert client.post(notify, data={"idop": "OP0001"}).status_code == 400
    assert client.post(notify, data={}).status_code == 400
    assert payments_of(october) == []
    # what PayFiP itself says, whatever the notification's body claims
    payfip.details["OP0001"] = details(payment)
    assert client.post(notify, data={"idop": "OP0001", "resultrans": "R", "montant": "1"}).status_code == 200
    (paid,) = payments_of(october)
    assert (paid.amount_cents, paid.paid_on) == (october.total_cents, date(2026, 11, 3))
    db.session.expire_all()
    assert db.session.get(OnlinePayment, payment.id).provider_ref == "112233"
    assert client.post(notify, data={"idop": "OP0001"}).status_code == 200  # repeated
    assert len(payments_of(october)) == 1


def test_payfip_refusal_abandonment_and_wrong_amount(client, auth, billed, payfip):
    family, (september, october), _ = billed
    auth.login("parent@example.fr")
    for invoice in (september, october):
        client.post(f"/facturation/{family.id}/payer", data={"facture": invoice.id})
    first, second = db.session.scalars(sa.select(OnlinePayment).order_by(OnlinePayment.id)).all()
    payfip.details["OP0001"] = details(first, resultrans="Z", numauto="")
    payfip.details["OP0002"] = details(second, montant=str(second.amount_cents + 500))
    for id_op in ("OP0001", "OP0002"):
        assert client.post("/paiement/notification/payfip", data={"idop": id_op}).status_code == 200
    db.session.expire_all()
    assert db.session.get(OnlinePayment, first.id).state is OnlineState.REFUSED
    assert db.session.get(OnlinePayment, second.id).state is OnlineState.MISMATCH
    assert payments_of(september) == payments_of(october) == []


def test_payfip_unreachable_tells_the_parent_and_starts_nothing(client, auth, billed, app):
    family, (_, october), _ = billed
    app.config.update(PAYMENT_PROVIDER="payfip", PAYFIP_NUMCLI="012345", PAYFIP_WS_URL="http://127.0.0.1:9/x")
    auth.login("parent@example.fr")
    response = client.post(
        f"/facturation/{family.id}/payer", data={"facture": october.id}, follow_redirects=True
    )
    assert "ne répond pas" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(OnlinePayment.id))) == 0
    assert state(october) == "À payer"


def test_payfip_objet_is_plain_ascii():
    assert providers.objet("Ville de Démo — Facture FA2026-000012 (œuvre)") == (
        "Ville de Demo Facture FA2026 000012 uvre"
    )


def test_an_invoice_being_paid_online_waits_for_the_next_direct_debit_file(client, auth, billed):
    from portail.models import SepaMandate
    from portail.services.billing import sepa

    family, (september, october), _ = billed
    db.session.add(
        SepaMandate(
            family_id=family.id,
            reference="PF-TEST-01",
            holder="Élodie MARTIN",
            iban="FR7630001007941234567890185",
            bic="BDFEFRPP",
            signed_on=date(2026, 9, 1),
        )
    )
    commit()
    today = billing.today_in_paris(utcnow())
    assert [due.invoice_id for due in sepa.preview(october.month, today).debits] == [october.id]
    started(client, auth, family, october)
    assert sepa.preview(october.month, today).debits == []


def test_the_return_page_asks_quietly_until_the_answer_then_stops(client, auth, billed, app):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    url = f"/facturation/{family.id}/paiements/{payment.reference}"
    poll = client.get(url, headers={"HX-Request": "true"})
    assert (poll.status_code, poll.data) == (204, b"")  # nothing swapped: no announcement, focus kept
    client.post(NOTIFY, data=signed(app, payment))
    answer = client.get(url, headers={"HX-Request": "true"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 286  # htmx stops asking
    assert "Paiement accepté" in text and "<html" not in text and "<h1" not in text
    assert 'id="payment-actions" hx-swap-oob="true"' in text and "Abandonner" not in text
    assert "every 3s" not in client.get(url).get_data(as_text=True)


def test_a_payment_left_at_the_bank_can_be_given_up_or_runs_out(client, auth, billed, app):
    family, (september, october), _ = billed
    payment = started(client, auth, family, october)
    invoice_page = client.get(f"/facturation/{family.id}/factures/{october.id}").get_data(as_text=True)
    assert "Paiement en cours" in invoice_page and f"/paiements/{payment.reference}" in invoice_page
    page = client.get(f"/facturation/{family.id}/paiements/{payment.reference}").get_data(as_text=True)
    assert "Abandonner ce paiement" in page
    response = client.post(f"/facturation/{family.id}/paiements/{payment.reference}/abandonner")
    assert response.status_code == 302
    assert "abandonné" in client.get(response.location).get_data(as_text=True)
    assert state(october) == "À payer"
    again = started(client, auth, family, october)  # payable again at once
    # the bank answers the first one after all: the money was taken, it is recorded
    assert client.post(NOTIFY, data=signed(app, payment)).status_code == 200
    assert len(payments_of(october)) == 1
    # a payment never answered stops holding its invoice after its time, and says so
    other = started(client, auth, family, september)
    other.created_at = utcnow() - billing.payments.PENDING_FOR - timedelta(seconds=1)
    commit()
    page = client.get(f"/facturation/{family.id}/paiements/{other.reference}").get_data(as_text=True)
    assert "Sans réponse de la banque" in page and "every 3s" not in page and "Abandonner" not in page
    assert again.state is OnlineState.PENDING


def test_another_familys_payment_cannot_be_given_up(client, auth, billed, app):
    family, (_, october), foreign = billed
    payment = started(client, auth, family, october)
    assert (
        client.post(f"/facturation/{foreign.family_id}/paiements/{payment.reference}/abandonner").status_code
        == 404
    )
    db.session.expire_all()
    assert db.session.get(OnlinePayment, payment.id).state is OnlineState.PENDING


def test_pay_everything_with_an_amount_no_longer_due_says_so(client, auth, billed):
    family, (september, october), _ = billed
    auth.login("parent@example.fr")
    shown = september.total_cents + october.total_cents
    started(client, auth, family, october)  # (another tab pays October meanwhile)
    response = client.post(f"/facturation/{family.id}/payer", data={"montant": shown}, follow_redirects=True)
    assert "Le montant à payer a changé" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(OnlinePayment.id))) == 1


def test_a_payment_of_another_amount_holds_its_invoice_until_an_agent_checks_it(client, auth, billed, app):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    client.post(NOTIFY, data=signed(app, payment, amount=payment.amount_cents + 1))
    assert state(october) == "Paiement à vérifier"
    home = client.get("/facturation/").get_data(as_text=True)
    assert f'name="facture" value="{october.id}"' not in home  # no "Payer" on it
    detail = client.get(f"/facturation/{family.id}/factures/{october.id}").get_data(as_text=True)
    assert "ne payez pas une seconde fois" in detail and "Payer en ligne" not in detail
    auth.logout()
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    auth.login("agent@example.fr")
    page = client.get("/gestion/facturation/paiements-en-ligne").get_data(as_text=True)
    assert billing.euros(payment.amount_cents + 1) in page and "Marquer vérifié" in page
    rows = list(
        csv.reader(
            io.StringIO(
                client.get("/gestion/facturation/paiements-en-ligne/rapprochement.csv").data.decode(
                    "utf-8-sig"
                )
            ),
            delimiter=";",
        )
    )
    assert rows[1][9] == f"{(payment.amount_cents + 1) / 100:.2f}".replace(".", ",")
    assert client.post(f"/gestion/facturation/paiements-en-ligne/{payment.id}/verifie").status_code == 302
    assert state(october) == "À payer"  # the agent enters what was received; the rest can be paid again
    assert client.post(NOTIFY, data=signed(app, payment)).status_code == 200  # a later notification: nothing
    assert payments_of(october) == [] and agent.id


def test_an_invoice_in_a_direct_debit_file_is_planned_until_its_collection_date():
    from portail.models import Invoice as Model
    from portail.models import InvoiceKind

    invoice = Model(kind=InvoiceKind.INVOICE, total_cents=1000, due_date=date(2026, 12, 20))
    debit_on = date(2026, 12, 31)
    assert billing.state_of(invoice, 1000, date(2026, 12, 30), True, debit_on) == "Prélèvement prévu"
    assert billing.state_of(invoice, 1000, debit_on, True, debit_on) == "Prélevée"
    assert billing.state_of(invoice, 1000, date(2026, 12, 30), False, None) == "Payée"


def test_a_huge_id_is_a_404_not_an_error(client, auth, billed):
    family, (_, october), _ = billed
    auth.login("parent@example.fr")
    huge = "9" * 25
    assert client.post(f"/facturation/{family.id}/payer", data={"facture": huge}).status_code == 404
    assert client.get(f"/facturation/{family.id}/factures/{huge}").status_code == 404
    assert client.get(f"/facturation/{family.id}/factures/{2**63}").status_code == 404
    assert client.get(f"/facturation/{family.id}/factures/{october.id}").status_code == 200


def test_a_poll_after_the_session_ended_sends_the_whole_page_to_the_login(client, auth, billed):
    family, (_, october), _ = billed
    payment = started(client, auth, family, october)
    page = f"/facturation/{family.id}/paiements/{payment.reference}"
    auth.logout()
    poll = client.get(page, headers={"HX-Request": "true", "HX-Current-URL": f"http://localhost{page}"})
    assert poll.status_code == 401 and poll.data == b""
    assert poll.headers["HX-Redirect"].startswith("/connexion?next=")
    assert poll.headers["HX-Redirect"].endswith(payment.reference)
    plain = client.get(page)
    assert plain.status_code == 302 and "/connexion?next=" in plain.location
