"""Forms of Mon espace citoyen."""

from wtforms import BooleanField, DateField, StringField
from wtforms.validators import InputRequired, Length

from portail.forms import (
    REQUIRED,
    FlaskForm,
    NewPasswordMixin,
    current_password_field,
    email_field,
    phone_field,
    required,
    validate_phone,
)


class SubscribeForm(FlaskForm):
    subscriber_code = StringField(
        "Code abonné Famille",
        validators=[required(), Length(max=20, message="Code abonné invalide.")],
        description="Il figure sur le courrier de la mairie (exemple : ABCDE-23456).",
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )
    child_birth_date = DateField(
        "Date de naissance d'un enfant de la famille",
        validators=[InputRequired(message=REQUIRED)],
        description="Pour vérifier le code : la date de naissance de l'un de vos enfants.",
    )


class ChangePasswordForm(NewPasswordMixin, FlaskForm):
    current_password = current_password_field()


class PhoneForm(FlaskForm):
    phone = phone_field()

    def validate_phone(self, field) -> None:
        validate_phone(self, field)


class EmailChangeForm(FlaskForm):
    new_email = email_field("Nouvelle adresse e-mail")
    current_password = current_password_field()


class DeleteAccountForm(FlaskForm):
    current_password = current_password_field()
    confirm = BooleanField(
        "Je comprends que mon compte sera supprimé définitivement.",
        validators=[InputRequired(message="Cochez la case pour confirmer la suppression.")],
    )


class ReauthForm(FlaskForm):
    current_password = current_password_field()
