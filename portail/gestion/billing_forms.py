"""Back-office forms of tariffs and payments."""

import re
import secrets

from wtforms import BooleanField, DateField, FieldList, FormField, HiddenField, SelectField, StringField
from wtforms.validators import Optional, ValidationError

from portail.forms import FlaskForm, Subform, required
from portail.models import PaymentMethod, utcnow
from portail.services import billing
from portail.services.billing import BillingError

BRACKET_ROWS = 6
# The hidden key of a payment form as rendered (secrets.token_urlsafe(16): 22 characters).
PAYMENT_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _euros_field(label: str, **kwargs) -> StringField:
    return StringField(
        label,
        description="En euros, par exemple 3,30",
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
        **kwargs,
    )


def _check_euros(_form, field) -> None:
    if field.data and field.data.strip():
        try:
            billing.parse_euros(field.data)
        except ValueError:
            raise ValidationError("Saisissez un montant en euros, par exemple 3,30.") from None


class BracketForm(Subform):
    upper = StringField("Quotient jusqu'à", render_kw={"inputmode": "numeric", "autocomplete": "off"})
    price = StringField(
        "Prix par jour (€)",
        validators=[_check_euros],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )

    def validate_upper(self, field) -> None:
        if field.data and not field.data.strip().isdigit():
            raise ValidationError("Saisissez un quotient entier, par exemple 622.")


class TariffForm(FlaskForm):
    activity = SelectField("Activité", coerce=int, validators=[required("Choisissez l'activité.")])
    valid_from = DateField("Valable à partir du", validators=[required("Saisissez la date de début.")])
    valid_until = DateField("Valable jusqu'au", validators=[Optional()])
    surcharge = _euros_field("Majoration par jour réservé hors délai", validators=[_check_euros])
    bill_late_absences = BooleanField("Facturer les absences déclarées après le délai d'absence")
    brackets = FieldList(
        FormField(BracketForm), label="Tranche", min_entries=BRACKET_ROWS, max_entries=BRACKET_ROWS
    )

    def validate_valid_until(self, field) -> None:
        if field.data and self.valid_from.data and field.data < self.valid_from.data:
            raise ValidationError("La date de fin doit suivre la date de début.")

    def bracket_rows(self) -> list[tuple[int | None, int]]:
        """The brackets entered as (upper bound or None, price in cents); BillingError for a price missing."""
        rows = []
        for entry in self.brackets:
            upper, price = (entry.form.upper.data or "").strip(), (entry.form.price.data or "").strip()
            if not upper and not price:
                continue
            if not price:
                raise BillingError("Chaque tranche saisie doit avoir un prix.")
            rows.append((int(upper) if upper else None, billing.parse_euros(price)))
        return rows

    def surcharge_cents(self) -> int:
        """The surcharge entered, in cents (none: 0)."""
        text = (self.surcharge.data or "").strip()
        return billing.parse_euros(text) if text else 0


class PaymentForm(FlaskForm):
    # One random key per form shown: its copies (a double click, a resent page) are one payment,
    # two forms are two payments even with the same values (two cheques of the same amount).
    key = HiddenField()
    paid_on = DateField("Date du paiement", validators=[required("Saisissez la date du paiement.")])
    amount = _euros_field("Montant", validators=[required("Saisissez le montant."), _check_euros])
    method = SelectField(
        "Moyen de paiement",
        choices=[("", "— Choisir —")] + [(m.name, billing.METHOD_LABELS[m]) for m in PaymentMethod],
        validators=[required("Choisissez le moyen de paiement.")],
    )

    def validate_paid_on(self, field) -> None:
        if field.data and field.data > billing.today_in_paris(utcnow()):
            raise ValidationError("La date du paiement ne peut pas être dans le futur.")

    def validate_amount(self, field) -> None:
        if field.data and not self.amount.errors:
            try:
                if billing.parse_euros(field.data) <= 0:
                    raise ValidationError("Le montant doit être supérieur à zéro.")
            except ValueError:
                pass

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not PAYMENT_KEY.fullmatch(self.key.data or ""):  # a page shown before the key existed
            self.form_errors.append(
                "Le paiement n'a pas été enregistré : ce formulaire n'était plus à jour. Vérifiez les "
                "paiements ci-dessus, puis cliquez à nouveau sur « Enregistrer le paiement »."
            )
            return False
        return valid

    def renew_key(self) -> None:
        """A new key: the form shown is a new entry."""
        self.key.data = secrets.token_urlsafe(16)
