"""SEPA direct debit: the family's mandate, the pre-notification, the month's pain.008 file (valid
against the official XSD, exactly the right debits, FRST then RCUR, once whatever the concurrency),
and the rejects (a bank's status report or an agent's entry) that put an invoice back to pay."""

import html
import io
import re
import threading
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
import sepaxml
import sqlalchemy as sa
import xmlschema

from portail.extensions import db
from portail.formatting import PARIS, french_date
from portail.models import (
    AuditEvent,
    DebitBatch,
    DirectDebit,
    Guardian,
    Invoice,
    InvoiceKind,
    OutboxMessage,
    Payment,
    PaymentMethod,
    Role,
    SepaMandate,
    User,
    utcnow,
)
from portail.services import billing, dossier, transactions
from portail.services.billing import BillingError, sepa
from portail.services.outbox import commit, render
from tests.factories import OCTOBER, book, canteen, make_family, make_user, priced, run_month, subscribe
from tests.support import fire, tabs

XSD = Path(sepaxml.__file__).parent / "schemas" / "pain.008.001.02.xsd"
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"}
NOVEMBER = date(2026, 11, 1)
# Canteen days (Mon, Tue, Thu, Fri) of October and November 2026 outside the holidays (zone C).
OCTOBER_DAYS = [date(2026, 10, d) for d in (1, 2, 5, 6, 8, 9)]
NOVEMBER_DAYS = [date(2026, 11, d) for d in (5, 6, 9, 10)]
IBANS = {
    "MARTIN": ("FR7630006000011234567890189", "AGRIFRPPXXX"),
    "BERNARD": ("FR1420041010050500013M02606", "PSSTFRPPXXX"),
    "DUBOIS": ("DE89370400440532013000", "COBADEFFXXX"),
    "PETIT": ("NL91ABNA0417164300", "ABNANL2A"),
    "ROUX": ("ES9121000418450200051332", "CAIXESBBXXX"),
}


def family_with_bank(name: str, email: str | None = None, bank: bool = True):
    """A family with a child, its first responsable's bank data (from IBANS) and a parent account."""
    family = make_family(name=f"Famille {name}", guardians=(("Camille", name), ("Alex", name)))
    if bank:
        guardian = family.guardians[0]
        guardian.iban, guardian.bic = IBANS[name]
        guardian.bank_holder = f"Camille {name}"
    subscribe(make_user(email=email or f"{name.lower()}@example.fr", first_name="Camille"), family)
    db.session.flush()
    return family


def sign(family, guardian=None) -> SepaMandate:
    parent = db.session.scalar(
        sa.select(User).where(User.email == f"{family.name.split()[-1].lower()}@example.fr")
    )
    mandate, _new = sepa.sign_mandate(family, (guardian or family.guardians[0]).id, parent, utcnow())
    commit()
    return mandate


def invoice_of(family, month=OCTOBER) -> Invoice:
    return db.session.scalar(
        sa.select(Invoice).where(
            Invoice.family_id == family.id,
            Invoice.month == month,
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.credited_by_id.is_(None),
        )
    )


def transactions_of(xml: bytes) -> list[dict]:
    """Each transaction of a pain.008 with its sequence, as the bank reads it."""
    root = xmlschema.XMLResource(xml.decode()).root
    found = []
    for info in root.iterfind(".//p:PmtInf", NS):
        sequence = info.findtext("p:PmtTpInf/p:SeqTp", namespaces=NS)
        collection = info.findtext("p:ReqdColltnDt", namespaces=NS)
        for tx in info.iterfind("p:DrctDbtTxInf", NS):
            found.append(
                {
                    "e2e": tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS),
                    "amount": tx.findtext("p:InstdAmt", namespaces=NS),
                    "mandate": tx.findtext("p:DrctDbtTx/p:MndtRltdInf/p:MndtId", namespaces=NS),
                    "signed": tx.findtext("p:DrctDbtTx/p:MndtRltdInf/p:DtOfSgntr", namespaces=NS),
                    "iban": tx.findtext("p:DbtrAcct/p:Id/p:IBAN", namespaces=NS),
                    "bic": tx.findtext("p:DbtrAgt/p:FinInstnId/p:BIC", namespaces=NS),
                    "name": tx.findtext("p:Dbtr/p:Nm", namespaces=NS),
                    "sequence": sequence,
                    "collection": collection,
                }
            )
    return found


def status_report(message_id: str, rejects: list[tuple[str, str]], accepted: tuple[str, ...] = ()) -> bytes:
    """A bank's pain.002 status report rejecting these (end-to-end id, reason code)."""
    rows = [
        f"<TxInfAndSts><StsId>R{n}</StsId><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
        f"<StsRsnInf><Rsn><Cd>{code}</Cd></Rsn></StsRsnInf></TxInfAndSts>"
        for n, (e2e, code) in enumerate(rejects)
    ] + [
        f"<TxInfAndSts><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId><TxSts>ACCP</TxSts></TxInfAndSts>"
        for e2e in accepted
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt>'
        "<GrpHdr><MsgId>BANK-1</MsgId><CreDtTm>2027-01-06T08:00:00</CreDtTm></GrpHdr>"
        f"<OrgnlGrpInfAndSts><OrgnlMsgId>{message_id}</OrgnlMsgId><OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId>"
        "</OrgnlGrpInfAndSts>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>P1</OrgnlPmtInfId>{''.join(rows)}</OrgnlPmtInfAndSts>"
        "</CstmrPmtStsRpt></Document>"
    ).encode()


def count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def outline(page: str) -> list[tuple[int, str]]:
    """The page's headings: (level, text), in order."""
    return [
        (int(level), html.unescape(re.sub(r"<[^>]+>", "", text)).strip())
        for level, text in re.findall(r"<h([1-6])\b[^>]*>(.*?)</h\1>", page, re.S)
    ]


def assert_outline(page: str) -> None:
    """One h1 first, no level skipped going down (axe's heading-order), no heading repeating the h1."""
    headings = outline(page)
    assert headings and headings[0][0] == 1 and [level for level, _ in headings].count(1) == 1, headings
    for (before, _), (after, text) in zip(headings, headings[1:], strict=False):
        assert after <= before + 1, f"h{after} « {text} » after an h{before}: {headings}"
    assert headings[0][1] not in [text for _, text in headings[1:]], headings


@pytest.fixture
def activity(app):
    activity = priced(canteen())
    commit()
    return activity


@pytest.fixture
def town(activity):
    """Five families billed for October: MARTIN, BERNARD and DUBOIS pay by direct debit (DUBOIS has
    paid part of it by cheque), PETIT by direct debit but has paid everything, ROUX has bank data but
    no mandate; an agent."""
    families = {name: family_with_bank(name) for name in IBANS}
    for n, family in enumerate(families.values()):
        book(family.children[0], activity, OCTOBER_DAYS[: 2 + n])
    commit()
    for name in ("MARTIN", "BERNARD", "DUBOIS", "PETIT"):
        sign(families[name])
    run_month()
    agent = make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
    billing.record_payment(
        invoice_of(families["DUBOIS"]), date(2026, 11, 20), 200, PaymentMethod.CHEQUE, agent
    )
    petit = invoice_of(families["PETIT"])
    billing.record_payment(petit, date(2026, 11, 20), petit.total_cents, PaymentMethod.CASH, agent)
    commit()
    return families, agent


# --- the month's file -------------------------------------------------------------------------------


def test_the_file_validates_against_the_official_xsd_and_holds_exactly_the_right_debits(town):
    families, agent = town
    batch, new = sepa.make_file(OCTOBER, agent, utcnow())
    commit()
    assert new
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(batch.xml.decode())  # raises if not valid
    found = sorted(transactions_of(batch.xml), key=lambda tx: tx["e2e"])
    expected = []
    for name in ("MARTIN", "BERNARD", "DUBOIS"):
        family, invoice = families[name], invoice_of(families[name])
        mandate = sepa.mandates_in_force([family.id])[family.id]
        owed = invoice.total_cents - (200 if name == "DUBOIS" else 0)
        expected.append(
            {
                "e2e": invoice.number,
                "amount": f"{owed // 100}.{owed % 100:02d}",
                "mandate": mandate.reference,
                "signed": mandate.signed_on.isoformat(),
                "iban": IBANS[name][0],
                "bic": IBANS[name][1],
                "name": f"Camille {name}",
                "sequence": "FRST",
                "collection": batch.collection_date.isoformat(),
            }
        )
    assert found == sorted(expected, key=lambda tx: tx["e2e"])
    owed = sum(invoice_of(families[name]).total_cents for name in ("MARTIN", "BERNARD", "DUBOIS")) - 200
    header = xmlschema.XMLResource(batch.xml.decode()).root.find("p:CstmrDrctDbtInitn/p:GrpHdr", NS)
    assert header.findtext("p:NbOfTxs", namespaces=NS) == "3" and (batch.count, batch.total_cents) == (
        3,
        owed,
    )
    assert header.findtext("p:CtrlSum", namespaces=NS) == f"{owed // 100}.{owed % 100:02d}"
    assert header.findtext("p:MsgId", namespaces=NS) == batch.message_id
    creditor = xmlschema.XMLResource(batch.xml.decode()).root.find(".//p:CdtrSchmeId//p:Othr/p:Id", NS)
    assert creditor.text == "FR72ZZZ123456"
    # Each debit is a payment on the collection day: the invoices read "Prélèvement prévu" until
    # then, "Prélevée" from that day (Paris); the others do not.
    collected = datetime.combine(batch.collection_date, time(9), PARIS)
    for name in ("MARTIN", "BERNARD"):
        invoice = invoice_of(families[name])
        (payment,) = invoice.payments
        assert (payment.method, payment.paid_on, payment.direct_debit_id is not None) == (
            PaymentMethod.DIRECT_DEBIT,
            batch.collection_date,
            True,
        )
        assert billing.state_now(invoice, utcnow())[1] == "Prélèvement prévu"
        assert billing.state_now(invoice, collected)[1] == "Prélevée"
    assert billing.state_now(invoice_of(families["ROUX"]), utcnow())[1] == "À payer"
    assert count(AuditEvent, AuditEvent.action == "sepa.file_made") == 1
    # Made again: nothing is left to debit, nothing changes.
    assert sepa.make_file(OCTOBER, agent, utcnow()) == (None, False)
    assert count(DebitBatch) == 1 and count(DirectDebit) == 3


def test_the_collection_date_is_the_latest_announced_on_a_business_day_and_never_too_soon(town):
    families, _agent = town
    today = billing.today_in_paris(utcnow())
    plan = sepa.preview(OCTOBER, today)
    announced = [due.announced for due in plan.debits]
    invoice = invoice_of(families["MARTIN"])
    assert announced[0] == max(invoice.due_date, today + timedelta(days=14))
    assert plan.collection_date >= max(max(announced), today + timedelta(days=sepa.LEAD_DAYS))
    assert plan.collection_date.weekday() < 5
    assert sepa.business_day(date(2027, 1, 1)) == date(2027, 1, 4)  # TARGET holiday, then a weekend
    assert sepa.business_day(date(2026, 12, 25)) == date(2026, 12, 28)  # Christmas, 26th, the Sunday
    # An invoice issued before the mandate: announced at least 14 days after the signature.
    mandate = SepaMandate(signed_on=date(2027, 2, 1))
    assert sepa.announced_on(date(2027, 1, 2), date(2027, 2, 1), mandate, 14) == date(2027, 2, 15)


def test_first_debit_is_frst_then_rcur_and_frst_again_after_its_reject(town, activity):
    families, agent = town
    october, _ = sepa.make_file(OCTOBER, agent, utcnow())
    commit()
    bernard = next(d for d in october.debits if d.invoice.family_id == families["BERNARD"].id)
    assert sepa.reject(bernard, "AM04", agent, utcnow())
    commit()
    for name in ("MARTIN", "BERNARD"):
        book(families[name].children[0], activity, NOVEMBER_DAYS)
    commit()
    run_month(NOVEMBER)
    november, _ = sepa.make_file(NOVEMBER, agent, utcnow())
    commit()
    sequences = {tx["mandate"]: tx["sequence"] for tx in transactions_of(november.xml)}
    mandates = sepa.mandates_in_force([families["MARTIN"].id, families["BERNARD"].id])
    assert sequences == {
        mandates[families["MARTIN"].id].reference: "RCUR",
        mandates[families["BERNARD"].id].reference: "FRST",  # its first was rejected
    }
    # The rejected invoice is not debited again by itself: the family was told to pay it otherwise.
    assert sepa.preview(OCTOBER, billing.today_in_paris(utcnow())).debits == []


def test_a_file_that_does_not_validate_saves_nothing(app, town):
    families, agent = town
    app.config["SEPA_CREDITOR_IBAN"] = "not an IBAN"
    with pytest.raises(BillingError, match="pas conforme au schéma"):
        sepa.make_file(OCTOBER, agent, utcnow())
    db.session.rollback()
    app.config["SEPA_CREDITOR_ID"] = ""
    with pytest.raises(BillingError, match="pas configuré"):
        sepa.make_file(OCTOBER, agent, utcnow())
    db.session.rollback()
    assert (
        count(DebitBatch) == count(DirectDebit) == count(Payment, Payment.direct_debit_id.is_not(None)) == 0
    )


@pytest.mark.both_dbs
def test_two_files_made_at_once_put_each_invoice_in_one_debit(app, town):
    families, agent = town
    other = make_user(email="compta@example.fr", role=Role.AGENT)
    commit()
    ids, results, errors = [agent.id, other.id], [], []
    at_insert = threading.Barrier(2)
    copy = threading.local()

    def hold(_connection, _cursor, statement, *_args):
        if getattr(copy, "armed", False) and statement.lstrip().upper().startswith("INSERT INTO DEBIT_BATCH"):
            copy.armed = False
            try:
                at_insert.wait(timeout=2)  # both have read what to debit (SQLite: the second is locked out)
            except threading.BrokenBarrierError:
                pass

    def work(user_id):
        try:
            with app.app_context():
                copy.armed = True
                user = db.session.get(User, user_id)
                batch, new = transactions.run(lambda: sepa.make_file(OCTOBER, user, utcnow()))
                results.append(new)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    sa.event.listen(db.engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=work, args=(user_id,)) for user_id in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", hold)
    assert errors == [] and sorted(results) == [False, True]
    db.session.expire_all()
    invoices = db.session.scalars(sa.select(DirectDebit.invoice_id)).all()
    assert len(invoices) == len(set(invoices)) == 3
    assert count(DebitBatch) == 1 and count(Payment, Payment.direct_debit_id.is_not(None)) == 3


def test_a_double_click_on_make_the_file_makes_one_file(app, client, auth, town):
    auth.login("agent@example.fr")
    answers = fire(tabs(app, client), "/gestion/facturation/prelevements/fichier", data={"mois": "2026-10"})
    batch = db.session.scalar(sa.select(DebitBatch))
    assert sorted(location for _, _, location in answers) == [
        "/gestion/facturation/prelevements/1",
        "/gestion/facturation/prelevements?mois=2026-10",
    ]
    assert count(DebitBatch) == 1 and batch.id == 1 and count(DirectDebit) == 3


# --- rejects ---------------------------------------------------------------------------------------


def test_a_bank_report_rejects_its_debits_once_with_their_reason_and_a_mail(client, auth, town):
    families, agent = town
    batch, _ = sepa.make_file(OCTOBER, agent, utcnow())
    commit()
    martin, bernard = invoice_of(families["MARTIN"]), invoice_of(families["BERNARD"])
    report = status_report(
        batch.message_id, [(martin.number, "AM04"), (bernard.number, "MS02"), ("FA1999-999999", "AC04")]
    )
    auth.login("agent@example.fr")
    answer = client.post(
        "/gestion/facturation/prelevements/rejets",
        data={"report": (io.BytesIO(report), "rejets.xml")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    page = answer.get_data(as_text=True)
    assert "2 rejet(s) enregistré(s)" in page and "FA1999-999999" in page
    db.session.expire_all()
    debit = db.session.scalar(sa.select(DirectDebit).where(DirectDebit.invoice_id == martin.id))
    assert (debit.reject_code, debit.reject_reason) == ("AM04", None)  # (no agent's note)
    assert billing.paid_cents([martin])[martin.id] == 0
    assert billing.state_now(martin, utcnow())[1] in ("À payer", "En retard")
    assert billing.state_now(invoice_of(families["BERNARD"]), utcnow())[1] in ("À payer", "En retard")
    assert billing.state_now(invoice_of(families["DUBOIS"]), utcnow())[1] == "Payée"  # (cheque, then debit)
    mails = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "debit_rejected").order_by(OutboxMessage.id)
    ).all()
    assert [mail.recipient for mail in mails] == ["martin@example.fr", "bernard@example.fr"]
    text = render(mails[0]).body
    assert "Motif : Provision insuffisante" in text and martin.number in text
    assert f"/facturation/{families['MARTIN'].id}/factures/{martin.id}" in text
    assert count(AuditEvent, AuditEvent.action == "sepa.debit_rejected") == 2
    # The same report again: nothing changes, no mail.
    rejected_at = debit.rejected_at
    again = client.post(
        "/gestion/facturation/prelevements/rejets",
        data={"report": (io.BytesIO(report), "rejets.xml")},
        content_type="multipart/form-data",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "2 rejet(s) déjà enregistré(s)" in again
    db.session.expire_all()
    assert db.session.get(DirectDebit, debit.id).rejected_at == rejected_at
    assert count(OutboxMessage, OutboxMessage.template == "debit_rejected") == 2
    # The invoice pages say it.
    parent_page = client.get(f"/gestion/facturation/factures/{martin.id}").get_data(as_text=True)
    assert "AM04 — Provision insuffisante" in parent_page and "rejeté par la banque" in parent_page


@pytest.mark.parametrize(
    "body",
    [b"not xml at all", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', b"<Document/>"],
)
def test_a_file_that_is_not_a_status_report_is_refused_in_french(client, auth, town, body):
    auth.login("agent@example.fr")
    page = client.post(
        "/gestion/facturation/prelevements/rejets",
        data={"report": (io.BytesIO(body), "rejets.xml")},
        content_type="multipart/form-data",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Ce fichier n" in page
    assert count(AuditEvent, AuditEvent.action == "sepa.report_imported") == 0


@pytest.mark.both_dbs
def test_a_report_declaring_a_dtd_after_a_long_comment_is_refused_and_rejects_nothing(client, auth, town):
    """A DTD is refused wherever it is, not only in the first bytes: its entities could expand to
    anything (here the reference of a debit to reject)."""
    families, agent = town
    batch, _ = sepa.make_file(OCTOBER, agent, utcnow())
    commit()
    martin = invoice_of(families["MARTIN"])
    report = status_report(batch.message_id, [("&ref;", "AM04")]).decode()
    prolog, _, document = report.partition("?>")
    body = (
        f'{prolog}?><!-- {"x" * 10_000} --><!DOCTYPE Document [<!ENTITY ref "{martin.number}">]>{document}'
    ).encode()
    with pytest.raises(BillingError, match="n'est pas un rapport de rejets pain.002"):
        sepa.read_report(body)
    auth.login("agent@example.fr")
    page = client.post(
        "/gestion/facturation/prelevements/rejets",
        data={"report": (io.BytesIO(body), "rejets.xml")},
        content_type="multipart/form-data",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Ce fichier n&#39;est pas un rapport de rejets pain.002." in page
    assert count(DirectDebit, DirectDebit.rejected_at.is_not(None)) == 0
    assert count(AuditEvent, AuditEvent.action == "sepa.report_imported") == 0
    # The same report without its DTD, the comment kept: read.
    plain = f"{prolog}?><!-- {'x' * 10_000} -->{document}".replace("&ref;", martin.number).encode()
    assert sepa.read_report(plain)[0] == [(martin.number, "AM04")]


def test_an_agent_enters_a_reject_and_a_closed_account_ends_the_mandate(client, auth, town):
    families, agent = town
    batch, _ = sepa.make_file(OCTOBER, agent, utcnow())
    commit()
    invoice = invoice_of(families["MARTIN"])
    debit = db.session.scalar(sa.select(DirectDebit).where(DirectDebit.invoice_id == invoice.id))
    auth.login("agent@example.fr")
    assert f"code-{debit.id}" in client.get(f"/gestion/facturation/prelevements/{batch.id}").get_data(
        as_text=True
    )
    path = f"/gestion/facturation/prelevements/debits/{debit.id}/rejet"
    refused = client.post(path, data={"code": ""}, follow_redirects=True).get_data(as_text=True)
    assert "Choisissez le motif du rejet." in refused
    db.session.expire_all()
    assert db.session.get(DirectDebit, debit.id).rejected_at is None
    done = client.post(path, data={"code": "AC04", "retour": "facture"}, follow_redirects=True)
    assert "la facture est de nouveau à payer" in done.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(DirectDebit, debit.id).reject_code == "AC04"
    assert billing.state_now(invoice, utcnow())[1] in ("À payer", "En retard")
    mandate = db.session.get(SepaMandate, debit.mandate_id)
    assert mandate.revoked_at is not None and families["MARTIN"].guardians[0].sepa_mandate_ref is None
    (mail,) = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "debit_rejected")
    ).all()
    assert mail.context["mandate_ended"] and "Votre mandat de prélèvement a pris fin" in render(mail).body
    # Entered again (a double click): already done, nothing changes.
    again = client.post(path, data={"code": "AM04"}, follow_redirects=True).get_data(as_text=True)
    assert "est déjà enregistré" in again
    assert db.session.get(DirectDebit, debit.id).reject_code == "AC04"
    assert count(OutboxMessage, OutboxMessage.template == "debit_rejected") == 1


@pytest.mark.both_dbs
def test_the_agents_note_on_a_reject_is_shown_to_agents_only(client, auth, town):
    families, agent = town
    batch, _ = sepa.make_file(OCTOBER, agent, utcnow())
    family = families["MARTIN"]
    invoice = invoice_of(family)
    debit = db.session.scalar(sa.select(DirectDebit).where(DirectDebit.invoice_id == invoice.id))
    commit()
    auth.login("agent@example.fr")
    form = client.get(f"/gestion/facturation/factures/{invoice.id}").get_data(as_text=True)
    assert "Note interne" in form and "la famille ne voit que le libellé du motif" in html.unescape(form)
    note = "Solde insuffisant au 31/12, appelé le 6/01"
    client.post(
        f"/gestion/facturation/prelevements/debits/{debit.id}/rejet",
        data={"code": "AM04", "detail": note, "retour": "facture"},
    )
    db.session.expire_all()
    assert db.session.get(DirectDebit, debit.id).reject_reason == note
    # The agents read it on the invoice's page and the file's.
    for path in (
        f"/gestion/facturation/factures/{invoice.id}",
        f"/gestion/facturation/prelevements/{batch.id}",
    ):
        page = html.unescape(client.get(path).get_data(as_text=True))
        assert "AM04 — Provision insuffisante" in page and f"Note interne : {note}" in page, path
    # The family reads the reason's standard label, in its mail and on its invoice page.
    (mail,) = db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.template == "debit_rejected"))
    rendered = render(mail)
    assert "Motif : Provision insuffisante" in rendered.body
    assert note not in rendered.body and note not in rendered.html
    auth.logout()
    auth.login("martin@example.fr")
    page = html.unescape(client.get(f"/facturation/{family.id}/factures/{invoice.id}").get_data(as_text=True))
    assert "<strong>rejeté par la banque</strong> (Provision insuffisante)" in page
    assert note not in page and "Note interne" not in page


# --- the back office ----------------------------------------------------------------------------------


def test_the_agent_previews_makes_downloads_and_reads_the_file(client, auth, town):
    families, _agent = town
    auth.login("agent@example.fr")
    page = client.get("/gestion/facturation/prelevements?mois=2026-10").get_data(as_text=True)
    owed = sum(invoice_of(families[name]).total_cents for name in ("MARTIN", "BERNARD", "DUBOIS")) - 200
    assert "Factures à prélever</dt><dd>3" in page and billing.euros(owed) in page
    assert "Mandats en vigueur (4)" in page and "FR76 •••• •••• •••• 0189" in page
    assert "7630006000011234567890189" not in page  # the IBAN shown masked
    assert "Prélèvements SEPA" in client.get("/gestion/facturation").get_data(as_text=True)
    made = client.post(
        "/gestion/facturation/prelevements/fichier", data={"mois": "2026-10"}, follow_redirects=True
    )
    assert "est prêt : 3 prélèvements" in made.get_data(as_text=True)
    batch = db.session.scalar(sa.select(DebitBatch))
    xml = client.get(f"/gestion/facturation/prelevements/{batch.id}/xml")
    assert xml.status_code == 200 and xml.data == batch.xml
    assert (
        xml.headers["Content-Disposition"].startswith("attachment;")
        and "no-store" in xml.headers["Cache-Control"]
    )
    assert count(AuditEvent, AuditEvent.action == "sepa.file_downloaded") == 1
    invoice = invoice_of(families["MARTIN"])
    staff_invoice = client.get(f"/gestion/facturation/factures/{invoice.id}").get_data(as_text=True)
    assert "FRST" in staff_invoice and "Transmis" in staff_invoice and "Prélèvement prévu le" in staff_invoice
    nothing = client.post(
        "/gestion/facturation/prelevements/fichier", data={"mois": "2026-10"}, follow_redirects=True
    )
    assert "n'est à prélever" in nothing.get_data(as_text=True)


@pytest.mark.both_dbs
def test_a_file_of_one_debit_says_one_prelevement(client, auth, town):
    families, agent = town
    for name in ("BERNARD", "DUBOIS"):
        sepa.revoke(families[name], agent, utcnow())
    commit()
    auth.login("agent@example.fr")
    made = client.post(
        "/gestion/facturation/prelevements/fichier", data={"mois": "2026-10"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "est prêt : 1 prélèvement, " in made
    assert db.session.scalar(
        sa.select(AuditEvent.detail).where(AuditEvent.action == "sepa.file_made")
    ).startswith("octobre 2026 : 1 prélèvement, ")


# --- the family's choice ---------------------------------------------------------------------------------


@pytest.fixture
def parent_family(client, auth, activity):
    family = family_with_bank("MARTIN", email="parent@example.fr")
    other = family_with_bank("BERNARD")
    commit()
    auth.login("parent@example.fr")
    return family, other


def choice(family, guardian_id=None, consent="y") -> dict:
    prefix = f"prelevement-{family.id}-"
    data = {f"{prefix}guardian": str(guardian_id if guardian_id is not None else family.guardians[0].id)}
    if consent:
        data[f"{prefix}consent"] = consent
    return data


def test_a_parent_chooses_direct_debit_then_stops_it(client, parent_family):
    family, _other = parent_family
    home = client.get("/facturation/").get_data(as_text=True)
    assert "Mandat de prélèvement SEPA" in home and "FR76 •••• •••• •••• 0189" in home
    assert "7630006000011234567890189" not in home
    answer = client.post(f"/facturation/{family.id}/prelevement", data=choice(family), follow_redirects=True)
    page = answer.get_data(as_text=True)
    mandate = db.session.scalar(sa.select(SepaMandate))
    assert mandate.reference == f"PF-{family.id:06d}-01" and f"mandat {mandate.reference}" in page
    assert (mandate.iban, mandate.bic, mandate.holder) == (*IBANS["MARTIN"], "Camille MARTIN")
    assert mandate.signed_on == billing.today_in_paris(utcnow())
    db.session.expire_all()
    assert db.session.get(Guardian, family.guardians[0].id).sepa_mandate_ref == mandate.reference
    assert "Arrêter le prélèvement" in page and "Référence du mandat (RUM)" in page
    assert count(AuditEvent, AuditEvent.action == "sepa.mandate_signed") == 1
    stop = f"/facturation/{family.id}/prelevement/arreter"
    assert f'href="{stop}"' in page  # (a link to the page that asks to confirm, not a form that stops)
    stopped = client.post(stop, data={"confirmer": "oui"}, follow_redirects=True)
    assert "Le prélèvement est arrêté" in stopped.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(SepaMandate, mandate.id).revoked_at is not None
    assert db.session.get(Guardian, family.guardians[0].id).sepa_mandate_ref is None
    # Chosen again: a new mandate, a new reference.
    client.post(f"/facturation/{family.id}/prelevement", data=choice(family))
    assert sepa.mandates_in_force([family.id])[family.id].reference == f"PF-{family.id:06d}-02"


@pytest.mark.both_dbs
def test_stopping_direct_debit_asks_to_confirm_first(client, parent_family):
    family, _other = parent_family
    client.post(f"/facturation/{family.id}/prelevement", data=choice(family))
    mandate = db.session.scalar(sa.select(SepaMandate))
    stop = f"/facturation/{family.id}/prelevement/arreter"
    asked = client.get(stop)
    page = html.unescape(asked.get_data(as_text=True))
    assert asked.status_code == 200 and "Arrêter le prélèvement automatique ?" in page
    assert mandate.reference in page and "FR76 •••• •••• •••• 0189" in page
    assert "nouveau mandat" in page and "déjà transmis à la banque ont lieu" in page
    assert 'name="confirmer" value="oui"' in page and "Non, garder le prélèvement" in page
    assert_outline(page)
    # Posted without the confirmation (the form of an older page): asked again, nothing ends.
    unconfirmed = client.post(stop)
    assert unconfirmed.status_code == 302 and unconfirmed.headers["Location"] == stop
    db.session.expire_all()
    assert db.session.get(SepaMandate, mandate.id).revoked_at is None
    assert count(AuditEvent, AuditEvent.action == "sepa.mandate_revoked") == 0
    # Confirmed: it ends, once whatever the clicks.
    client.post(stop, data={"confirmer": "oui"})
    client.post(stop, data={"confirmer": "oui"})
    db.session.expire_all()
    assert db.session.get(SepaMandate, mandate.id).revoked_at is not None
    assert count(AuditEvent, AuditEvent.action == "sepa.mandate_revoked") == 1
    # Nothing left to stop: back to Espace Facturation.
    gone = client.get(stop, follow_redirects=True)
    assert "n'est pas en place" in html.unescape(gone.get_data(as_text=True))


def test_the_direct_debit_headings_are_an_outline_on_both_pages(client, parent_family):
    """Espace Facturation: the section under the family's h2; its own page (the 422 of a choice
    without consent): the h1 with the family's name, the error summary and the mandate at h2."""
    family, _other = parent_family
    home = client.get("/facturation/").get_data(as_text=True)
    assert_outline(home)
    levels = dict((text, level) for level, text in outline(home))
    assert (levels[family.name], levels["Prélèvement automatique"], levels["Mandat de prélèvement SEPA"]) == (
        2,
        3,
        4,
    )
    refused = client.post(f"/facturation/{family.id}/prelevement", data=choice(family, consent=None))
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert_outline(page)
    assert outline(page) == [
        (1, f"Prélèvement automatique — {family.name}"),
        (2, "1 erreur à corriger"),
        (2, "Mandat de prélèvement SEPA"),
    ]


def test_a_choice_sent_twice_at_once_makes_one_mandate(app, client, parent_family):
    family, _other = parent_family
    answers = fire(tabs(app, client), f"/facturation/{family.id}/prelevement", data=choice(family))
    assert [status for status, _, _ in answers] == [302, 302]
    assert count(SepaMandate) == 1 and count(AuditEvent, AuditEvent.action == "sepa.mandate_signed") == 1


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no consent", "Cochez la case d'autorisation pour signer le mandat de prélèvement."),
        ("other family", "Choisissez le responsable dont le compte sera prélevé."),
        ("no bank data", "Aucune coordonnée bancaire n'est enregistrée pour Alex MARTIN"),
        ("garbage", "Choisissez le responsable dont le compte sera prélevé."),
    ],
)
def test_a_bad_choice_gets_a_french_message_and_saves_nothing(client, parent_family, case, message):
    family, other = parent_family
    data = {
        "no consent": choice(family, consent=None),
        "other family": choice(family, other.guardians[0].id),
        "no bank data": choice(family, family.guardians[1].id),
        "garbage": choice(family, "x"),
    }[case]
    answer = client.post(f"/facturation/{family.id}/prelevement", data=data)
    assert answer.status_code == 422
    page = html.unescape(answer.get_data(as_text=True))
    assert message in page and "erreur" in page and "Mandat de prélèvement SEPA" in page
    assert count(SepaMandate) == 0


def test_without_bank_data_the_family_is_sent_to_its_dossier(client, auth, activity):
    family = family_with_bank("ROUX", email="parent@example.fr", bank=False)
    commit()
    auth.login("parent@example.fr")
    page = client.get("/facturation/").get_data(as_text=True)
    assert "Données bancaires" in page and f"/famille/{family.id}/responsables" in page
    assert "Signer le mandat" not in page


def test_another_familys_direct_debit_is_404(client, parent_family):
    family, other = parent_family
    assert client.post(f"/facturation/{other.id}/prelevement", data=choice(other)).status_code == 404
    assert client.post(f"/facturation/{other.id}/prelevement/arreter").status_code == 404
    assert client.get(f"/facturation/{other.id}/prelevement/arreter").status_code == 404
    assert (
        client.post(f"/facturation/{other.id}/prelevement/arreter", data={"confirmer": "oui"}).status_code
        == 404
    )
    assert count(SepaMandate) == 0


# --- pre-notification and a new IBAN ---------------------------------------------------------------------


def test_the_invoice_mail_and_page_announce_the_debit(client, parent_family, activity):
    family, _other = parent_family
    client.post(f"/facturation/{family.id}/prelevement", data=choice(family))
    book(family.children[0], activity, OCTOBER_DAYS)
    commit()
    run_month()
    invoice = invoice_of(family)
    mandate = sepa.mandates_in_force([family.id])[family.id]
    on = sepa.announced_on(billing.today_in_paris(invoice.issued_at), invoice.due_date, mandate, 14)
    mail = db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.template == "invoice_issued"))
    text = render(mail).body
    assert (
        f"Facture n° {invoice.number} : {billing.euros(invoice.total_cents)}, prélevée le {french_date(on)} sur le "
        f"compte FR76 •••• •••• •••• 0189 (mandat de prélèvement {mandate.reference})"
    ) in text
    page = client.get(f"/facturation/{family.id}/factures/{invoice.id}").get_data(as_text=True)
    assert f"Prélèvement prévu le <strong>{french_date(on)}</strong>" in page and mandate.reference in page


def test_a_new_iban_validated_ends_the_mandate_and_tells_the_family(town):
    families, agent = town
    family = families["MARTIN"]
    guardian = family.guardians[0]
    mandate = sepa.mandates_in_force([family.id])[family.id]
    # The same IBAN with another BIC: the mandate carries it.
    dossier.edit_directly(
        family,
        agent,
        "bank",
        guardian,
        {"bank_holder": "Camille MARTIN", "iban": guardian.iban, "bic": "AGRIFRPP"},
    )
    commit()
    assert db.session.get(SepaMandate, mandate.id).revoked_at is None and mandate.bic == "AGRIFRPP"
    dossier.edit_directly(
        family,
        agent,
        "bank",
        guardian,
        {"bank_holder": "Camille MARTIN", "iban": IBANS["ROUX"][0], "bic": IBANS["ROUX"][1]},
    )
    commit()
    db.session.expire_all()
    ended = db.session.get(SepaMandate, mandate.id)
    assert ended.revoked_at is not None and sepa.ended_by_bank_change(ended)
    (mail,) = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "debit_mandate_ended")
    ).all()
    assert mail.recipient == "martin@example.fr" and "FR76 •••• •••• •••• 0189" in render(mail).body
    # No longer in the month's file.
    plan = sepa.preview(OCTOBER, billing.today_in_paris(utcnow()))
    assert family.id not in {due.mandate.family_id for due in plan.debits}
