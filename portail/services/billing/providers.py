"""Online payment providers: PayFiP (the DGFiP's service for public bodies) and the test bank.

A provider creates a payment for a redirection (`begin`) and turns the server-to-server
notification it sends into a verified `Notification` (`verify`), or raises `InvalidNotification`.
What the parent's browser brings back on its return is never trusted: only `verify`.

- PayFiP (web service "PaiementSecuriseService"): `creerPaiementSecurise` with the parameters
  numcli, exer, refdet, objet, montant (cents), mel, urlnotif, urlredirect, saisie returns an
  operation id (idOp); the parent pays at PayFiP (`paiementws.web?idop=…`); PayFiP then posts the
  idOp to urlnotif, and the details are read back from PayFiP itself with
  `recupererDetailPaiementSecurise(idOp)` (resultrans, montant, numauto, dattrans, heurtrans…): the
  notification carries nothing to believe but an id that only PayFiP can resolve.
- The test bank (development and tests only): a page of the app plays the bank; its notification
  is signed with HMAC-SHA256 under a key derived from SECRET_KEY, over all its fields.
"""

import hashlib
import hmac
import unicodedata
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode
from xml.etree import ElementTree

from portail.formatting import PARIS
from portail.models import OnlinePayment, OnlineState

# PayFiP's result codes (resultrans): P paid by card, V paid by direct debit at PayFiP, A abandoned
# by the payer, R refused by the bank, Z refused (other reasons).
RESULTS = {
    "P": OnlineState.PAID,
    "V": OnlineState.PAID,
    "A": OnlineState.ABANDONED,
    "R": OnlineState.REFUSED,
    "Z": OnlineState.REFUSED,
}
MIN_CENTS, MAX_CENTS = 100, 99_999_99  # PayFiP's bounds: 1 € to 99,999.99 €


class InvalidNotification(Exception):
    """A notification that is not the provider's, or not about a payment of ours: nothing is done."""


class ProviderError(Exception):
    """The provider could not create the payment (unreachable, refused): the parent is told."""


@dataclass(frozen=True)
class Notification:
    """What a verified notification says of one of our payments."""

    reference: str
    result: OnlineState
    result_code: str
    amount_cents: int
    provider_ref: str
    paid_at: datetime | None


def _paid_at(dattrans: str, heurtrans: str) -> datetime | None:
    """The bank's date (DDMMYYYY) and time (HHMM), Paris time, as UTC; None if absent or wrong."""
    try:
        local = datetime.strptime(f"{dattrans}{heurtrans or '0000'}", "%d%m%Y%H%M")
    except ValueError:
        return None
    return local.replace(tzinfo=PARIS).astimezone(UTC)


def objet(text: str) -> str:
    """PayFiP's `objet`: letters, digits and spaces only, no accents, 100 characters at most."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())[:100]


class TestBank:
    """The bank played by a page of the app (PORTAIL_PAYMENT_PROVIDER=test): never in production."""

    name = "test"

    def __init__(self, secret_key: str):
        self.key = hmac.new(secret_key.encode(), b"portail-test-bank", hashlib.sha256).digest()

    def begin(self, payment: OnlinePayment, notify_url: str, return_url: str, subject: str) -> str:
        """The test bank's page for `payment` (it posts its notification to `notify_url`)."""
        from flask import url_for

        return url_for("billing.test_bank", reference=payment.reference)

    def sign(self, fields: dict[str, str]) -> str:
        message = urlencode(sorted((k, v) for k, v in fields.items() if k != "signature"))
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    def notification_fields(
        self, payment: OnlinePayment, code: str, amount_cents: int, now: datetime
    ) -> dict:
        """The notification the test bank posts for `payment` (signed)."""
        local = now.astimezone(PARIS)
        fields = {
            "refdet": payment.reference,
            "resultrans": code,
            "montant": str(amount_cents),
            "numauto": f"TEST{payment.id:06d}" if code in ("P", "V") else "",
            "dattrans": local.strftime("%d%m%Y"),
            "heurtrans": local.strftime("%H%M"),
        }
        return fields | {"signature": self.sign(fields)}

    def verify(self, form) -> Notification:
        fields = {
            key: form.get(key, "")
            for key in ("refdet", "resultrans", "montant", "numauto", "dattrans", "heurtrans")
        }
        signature = form.get("signature", "")
        if not hmac.compare_digest(self.sign(fields), signature):
            raise InvalidNotification("signature de la banque de test invalide")
        return _notification(fields)


class PayFiP:
    """The DGFiP's PayFiP, through its SOAP web service."""

    name = "payfip"
    NAMESPACE = "http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/contrat_paiement_securise/PaiementSecuriseService"

    def __init__(self, numcli: str, saisie: str, ws_url: str, pay_url: str, timeout: float = 10.0):
        self.numcli, self.saisie, self.ws_url, self.pay_url, self.timeout = (
            numcli,
            saisie,
            ws_url,
            pay_url,
            timeout,
        )

    def parameters(
        self, payment: OnlinePayment, notify_url: str, return_url: str, subject: str
    ) -> dict[str, str]:
        """creerPaiementSecurise's parameters for `payment`."""
        return {
            "numcli": self.numcli,
            "exer": str(payment.created_at.astimezone(PARIS).year),
            "refdet": payment.reference,
            "objet": objet(subject),
            "montant": str(payment.amount_cents),
            "mel": payment.email,
            "urlnotif": notify_url,
            "urlredirect": return_url,
            "saisie": self.saisie,
        }

    def begin(self, payment: OnlinePayment, notify_url: str, return_url: str, subject: str) -> str:
        """Create the payment at PayFiP: its idOp is kept on `payment`; the parent is sent to pay it."""
        answer = self._call(
            "creerPaiementSecurise", self.parameters(payment, notify_url, return_url, subject)
        )
        id_op = answer.get("idOp", "")
        if not id_op:
            raise ProviderError("PayFiP n'a pas donné d'identifiant d'opération")
        payment.provider_token = id_op
        return self.page(payment)

    def page(self, payment: OnlinePayment) -> str:
        """PayFiP's page for a payment created there."""
        return f"{self.pay_url}?{urlencode({'idop': payment.provider_token})}"

    def verify(self, form) -> Notification:
        """The notification's idOp, resolved at PayFiP; its client number and mode must be ours."""
        id_op = (form.get("idop") or form.get("idOp") or "").strip()
        if not id_op or len(id_op) > 64:
            raise InvalidNotification("notification PayFiP sans idOp")
        try:
            details = self._call("recupererDetailPaiementSecurise", {"idOp": id_op})
        except ProviderError as error:
            raise InvalidNotification(f"idOp {id_op} inconnu de PayFiP ({error})") from error
        if details.get("numcli") != self.numcli or details.get("saisie", self.saisie) != self.saisie:
            raise InvalidNotification(f"idOp {id_op}: client {details.get('numcli')!r} ou mode inattendu")
        return _notification(details)

    def _call(self, operation: str, arguments: dict[str, str]) -> dict[str, str]:
        """One SOAP operation (a document/literal call with one `arg0`), its `return`'s fields."""
        fields = "".join(f"<{k}>{_escape(v)}</{k}>" for k, v in arguments.items())
        envelope = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:pai="{self.NAMESPACE}"><soapenv:Body><pai:{operation}><arg0>{fields}</arg0>'
            f"</pai:{operation}></soapenv:Body></soapenv:Envelope>"
        )
        request = urllib.request.Request(
            self.ws_url,
            data=envelope.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ""},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (configured URL)
                body = response.read()
        except urllib.error.HTTPError as error:  # a SOAP fault comes with a 500
            raise ProviderError(_fault(error.read()) or f"HTTP {error.code}") from error
        except OSError as error:
            raise ProviderError(f"PayFiP injoignable ({error})") from error
        root = ElementTree.fromstring(body)
        returned = next((e for e in root.iter() if _local(e.tag) == "return"), None)
        if returned is None:
            raise ProviderError(_fault(body) or "réponse PayFiP sans résultat")
        return {_local(child.tag): (child.text or "").strip() for child in returned}


def _notification(fields: dict[str, str]) -> Notification:
    code = fields.get("resultrans", "")
    if code not in RESULTS or not fields.get("refdet"):
        raise InvalidNotification(f"résultat {code!r} inconnu")
    try:
        amount = int(fields.get("montant", ""))
    except ValueError:
        raise InvalidNotification("montant illisible") from None
    return Notification(
        reference=fields["refdet"],
        result=RESULTS[code],
        result_code=code,
        amount_cents=amount,
        provider_ref=fields.get("numauto", "")[:64],
        paid_at=_paid_at(fields.get("dattrans", ""), fields.get("heurtrans", "")),
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fault(body: bytes) -> str:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return ""
    return next(((e.text or "").strip() for e in root.iter() if _local(e.tag) == "faultstring"), "")


def configured(config) -> "TestBank | PayFiP | None":
    """The provider the town configured (None: no online payment)."""
    name = config.get("PAYMENT_PROVIDER", "")
    if name == "test":
        return TestBank(config["SECRET_KEY"])
    if name == "payfip":
        return PayFiP(
            config["PAYFIP_NUMCLI"],
            config["PAYFIP_SAISIE"],
            config["PAYFIP_WS_URL"],
            config["PAYFIP_PAY_URL"],
        )
    return None
