"""Demo direct debit: the MARTIN family pays by direct debit (Claire's mandate, whose reference the
demo's file already shows), and the treasury's file of the last billed month is made (its invoice is
to be debited on the date the file says)."""

from datetime import timedelta

import sqlalchemy as sa

from portail.demo.billing import billed_months
from portail.extensions import db
from portail.models import Family, SepaMandate, User, utcnow
from portail.services import billing
from portail.services.billing import sepa


def load(families: dict[str, Family], agent: User) -> None:
    """Claire MARTIN's mandate, signed before the billed months, and last month's file (the caller
    commits; call it after demo.billing's load)."""
    martin = families["MRTNA52846"]
    claire = martin.guardians[0]
    parent = db.session.scalar(sa.select(User).where(User.email == "claire.martin@demo.fr"))
    today = billing.today_in_paris(utcnow())
    older, last = billed_months(today)
    db.session.add(
        SepaMandate(
            family_id=martin.id,
            guardian_id=claire.id,
            reference=claire.sepa_mandate_ref,  # (signed on paper before the portal: the file shows it)
            holder=claire.bank_holder,
            iban=claire.iban,
            bic=claire.bic,
            signed_on=older - timedelta(days=45),
            signed_by_id=parent.id,
        )
    )
    db.session.flush()
    sepa.make_file(last, agent, utcnow())
