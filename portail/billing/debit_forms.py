"""The parents' direct-debit form: the responsable whose account is debited, and the signed consent."""

from wtforms import BooleanField, RadioField
from wtforms.validators import DataRequired

from portail.forms import FlaskForm
from portail.models import Guardian
from portail.services.dossier import mask_iban


def _guardian_id(value):
    """A posted id as an int (None for anything else: the service says what to choose)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class MandateForm(FlaskForm):
    """Choose direct debit: one responsable's account, and the mandate's consent (the signature)."""

    guardian = RadioField(
        "Compte à prélever",
        coerce=_guardian_id,
        validate_choice=False,  # (the service checks that it is a responsable of this family)
        validators=[DataRequired("Choisissez le responsable dont le compte sera prélevé.")],
    )
    consent = BooleanField(
        "J'ai lu le mandat ci-dessus et j'autorise la commune à prélever mes factures sur ce compte",
        validators=[DataRequired("Cochez la case d'autorisation pour signer le mandat de prélèvement.")],
    )

    def offer(self, guardians: list[Guardian]) -> "MandateForm":
        """The responsables with bank data as the choices."""
        self.guardian.choices = [
            (guardian.id, f"{guardian.bank_holder or guardian.full_name} — {mask_iban(guardian.iban)}")
            for guardian in guardians
        ]
        return self
