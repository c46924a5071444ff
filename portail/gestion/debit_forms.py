"""Back-office direct-debit forms: a debit rejected by hand, a bank's status report to import."""

from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from portail.forms import FlaskForm, strip
from portail.services.billing import sepa

# (the family reads the reason's standard label, in its mail and on its invoice page)
NOTE_HINT = "Facultatif, pour les agents seulement : la famille ne voit que le libellé du motif."


class RejectForm(FlaskForm):
    """A debit the bank rejected, entered by an agent from its notice: the reason code, an internal note."""

    code = SelectField(
        "Motif du rejet",
        choices=[("", "— Choisir —")]
        + [(code, f"{code} — {label}") for code, label in sepa.REJECT_REASONS.items()],
        validators=[DataRequired("Choisissez le motif du rejet.")],
    )
    detail = StringField(
        "Note interne",
        validators=[Optional(), Length(max=200, message="200 caractères au maximum.")],
        filters=[strip],
        description=NOTE_HINT,
    )


class ReportForm(FlaskForm):
    """The bank's status report (pain.002) listing the rejected debits."""

    report = FileField(
        "Rapport de rejets de la banque (fichier XML pain.002)",
        validators=[FileRequired(message="Choisissez le fichier de rejets envoyé par la banque.")],
    )
