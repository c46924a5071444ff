"""Forms of Mon espace citoyen."""

from wtforms import BooleanField
from wtforms.validators import InputRequired

from portail.forms import (
    FlaskForm,
    NewPasswordMixin,
    child_birth_date_field,
    current_password_field,
    email_field,
    phone_field,
    subscriber_code_field,
    validate_phone,
)


class SubscribeForm(FlaskForm):
    subscriber_code = subscriber_code_field(mandatory=True)
    child_birth_date = child_birth_date_field(
        mandatory=True, description="Pour vérifier le code : la date de naissance de l'un de vos enfants."
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
