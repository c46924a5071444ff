"""The form of a service cancellation (Annulations de service)."""

from wtforms import DateField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from portail.forms import FlaskForm, strip
from portail.services.cancellations import MAX_DAYS, REASONS


class Day(DateField):
    """A date field that says in French when what was typed is not a date."""

    def process_formdata(self, valuelist) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Date invalide (exemple : 07/12/2026).") from None


class CancellationForm(FlaskForm):
    """An activity, its first and last days cancelled, and the reason told to the families."""

    activity = SelectField(
        "Activité",
        coerce=int,
        validate_choice=False,
        validators=[DataRequired(message="Choisissez l'activité.")],
    )
    first_day = Day(
        "Premier jour annulé", validators=[InputRequired(message="Saisissez le premier jour annulé.")]
    )
    last_day = Day(
        "Dernier jour annulé",
        validators=[Optional()],
        description=f"Laissez vide pour un seul jour ; {MAX_DAYS} jours au plus.",
    )
    reason = RadioField(
        "Motif",
        choices=[(reason, reason) for reason in REASONS],
        validators=[InputRequired(message="Choisissez le motif.")],
    )
    detail = StringField(
        "Précision",
        validators=[Length(max=80, message="80 caractères au maximum.")],
        filters=[strip],
        description="Obligatoire avec « Autre » (par exemple : travaux dans la cuisine). Elle est écrite aux familles.",
    )

    def validate_activity(self, field) -> None:
        if field.data not in {value for value, _label in field.choices}:
            raise ValidationError("Choisissez l'activité.")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        first, last = self.first_day.data, self.last_day.data
        if first and last and last < first:
            self.last_day.errors.append("Le dernier jour doit être le même que le premier ou après.")
            valid = False
        elif first and last and (last - first).days >= MAX_DAYS:
            self.last_day.errors.append(
                f"Une annulation couvre au plus {MAX_DAYS} jours : faites-en plusieurs."
            )
            valid = False
        if self.reason.data == "Autre" and not self.detail.data:
            self.detail.errors.append("Avec le motif « Autre », précisez-le : il est écrit aux familles.")
            valid = False
        return valid

    @property
    def last(self):
        """The last day cancelled (the first, for one day)."""
        return self.last_day.data or self.first_day.data
