"""Form helpers shared by the blueprints: French messages and common fields."""

from flask import render_template, request
from flask_wtf import FlaskForm  # noqa: F401  (re-exported for the blueprints' forms)
from wtforms import DateField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional, ValidationError

from portail.models import Civility
from portail.services import passwords

REQUIRED = "Ce champ est obligatoire."
CIVILITY_CHOICES = [("", "—"), (Civility.MADAME.value, "Madame"), (Civility.MONSIEUR.value, "Monsieur")]


def strip(value):
    """A field filter: the text without its surrounding spaces (other values unchanged)."""
    return value.strip() if isinstance(value, str) else value


class Subform(FlaskForm):
    """A form nested in another with FormField: the outer form carries the CSRF token."""

    class Meta:
        csrf = False


def form_page(template: str, **context):
    """A page with a form: 422 when a posted form is shown again (it did not go through), else 200."""
    return render_template(template, **context), 422 if request.method == "POST" else 200


def required(message: str = REQUIRED) -> DataRequired:
    return DataRequired(message=message)


def email_field(label: str = "Adresse e-mail", **kwargs) -> EmailField:
    """An e-mail field validated with email-validator (no DNS lookup)."""
    return EmailField(
        label,
        validators=[
            required(),
            Length(max=254, message="Adresse e-mail trop longue."),
            Email(
                message="Adresse e-mail invalide (exemple : prenom.nom@exemple.fr).",
                check_deliverability=False,
            ),
        ],
        filters=[strip],
        render_kw={"autocomplete": "email", "spellcheck": "false"},
        **kwargs,
    )


def name_field(label: str, autocomplete: str | None = None) -> StringField:
    return StringField(
        label,
        validators=[required(), Length(max=100, message="100 caractères au maximum.")],
        filters=[strip],
        render_kw={"autocomplete": autocomplete} if autocomplete else None,
    )


def phone_field(label: str = "Téléphone") -> StringField:
    return StringField(
        label,
        validators=[Optional(), Length(max=30, message="30 caractères au maximum.")],
        filters=[strip],
        render_kw={"autocomplete": "tel", "inputmode": "tel"},
        description="Exemple : 06 12 34 56 78",
    )


def validate_phone(form, field) -> None:
    """French or international phone numbers: digits, spaces, dots, dashes, a leading +."""
    if not field.data:
        return
    digits = "".join(ch for ch in field.data if ch.isdigit())
    allowed = set("0123456789 .-+()")
    if set(field.data) - allowed or not 9 <= len(digits) <= 15:
        raise ValidationError("Numéro de téléphone invalide (exemple : 06 12 34 56 78).")


def check_optional_email(form, field) -> None:
    """An optional e-mail field, validated with email-validator when filled."""
    from email_validator import EmailNotValidError, validate_email

    if field.data:
        try:
            validate_email(field.data, check_deliverability=False)
        except EmailNotValidError:
            raise ValidationError("Adresse e-mail invalide (exemple : prenom.nom@exemple.fr).") from None


def civility_field() -> SelectField:
    return SelectField("Civilité", choices=CIVILITY_CHOICES, validators=[Optional()])


def subscriber_code_field(mandatory: bool) -> StringField:
    """The code abonné of a family, as printed on the town's letter."""
    return StringField(
        "Code abonné Famille",
        validators=[required() if mandatory else Optional(), Length(max=20, message="Code abonné invalide.")],
        description="Il figure sur le courrier de la mairie (exemple : ABCDE-23456).",
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )


def child_birth_date_field(mandatory: bool, description: str) -> DateField:
    """The birth date of one of the family's children, which proves the code abonné."""
    return DateField(
        "Date de naissance d'un enfant de la famille",
        validators=[InputRequired(message=REQUIRED) if mandatory else Optional()],
        description=description,
    )


def current_password_field(label: str = "Mot de passe actuel") -> PasswordField:
    """The account's current password (login, or confirming a sensitive change)."""
    return PasswordField(
        label, validators=[InputRequired(message=REQUIRED)], render_kw={"autocomplete": "current-password"}
    )


class NewPasswordMixin:
    """Mot de passe + Confirmation, with the CNIL policy."""

    password = PasswordField(
        "Mot de passe",
        validators=[InputRequired(message=REQUIRED)],
        render_kw={"autocomplete": "new-password"},
        description="Entre 12 et 128 caractères. Une phrase de plusieurs mots est facile à retenir.",
    )
    password_confirm = PasswordField(
        "Confirmation du mot de passe",
        validators=[InputRequired(message=REQUIRED)],
        render_kw={"autocomplete": "new-password"},
    )

    def password_inputs(self) -> list[str]:
        """Words the password should not be built from (name, e-mail)."""
        return []

    def validate_password(self, field) -> None:
        error = passwords.policy_error(field.data or "", self.password_inputs())
        if error:
            raise ValidationError(error)

    def validate_password_confirm(self, field) -> None:
        if field.data != self.password.data:
            raise ValidationError("Les deux mots de passe ne sont pas identiques.")
