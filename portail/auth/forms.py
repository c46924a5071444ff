"""Forms of the authentication pages."""

from wtforms import BooleanField
from wtforms.validators import InputRequired

from portail.forms import (
    FlaskForm,
    NewPasswordMixin,
    child_birth_date_field,
    civility_field,
    current_password_field,
    email_field,
    name_field,
    phone_field,
    subscriber_code_field,
    validate_phone,
)


class SignUpForm(NewPasswordMixin, FlaskForm):
    civility = civility_field()
    last_name = name_field("Nom", "family-name")
    first_name = name_field("Prénom", "given-name")
    email = email_field()
    phone = phone_field()
    subscriber_code = subscriber_code_field(mandatory=False)
    child_birth_date = child_birth_date_field(
        mandatory=False,
        description="Vérification du code abonné : la date de naissance de l'un de vos enfants.",
    )
    accept = BooleanField(
        "J'accepte que mes données soient traitées par la collectivité pour la gestion des activités de mes enfants.",
        validators=[
            InputRequired(message="Vous devez accepter le traitement de vos données pour créer un compte.")
        ],
    )

    def validate_phone(self, field) -> None:
        validate_phone(self, field)

    def validate(self, extra_validators=None) -> bool:
        """The code abonné and its verification date go together."""
        valid = super().validate(extra_validators)
        code, born = self.subscriber_code, self.child_birth_date
        if code.data and born.data is None and not born.errors:
            born.errors.append("Indiquez la date de naissance d'un enfant pour vérifier le code abonné.")
            valid = False
        if born.data is not None and not code.data:
            code.errors.append("Indiquez le code abonné qui va avec cette date de naissance.")
            valid = False
        return valid

    def password_inputs(self) -> list[str]:
        return [self.last_name.data, self.first_name.data, self.email.data]


class LoginForm(FlaskForm):
    email = email_field()
    password = current_password_field("Mot de passe")


class EmailOnlyForm(FlaskForm):
    email = email_field()


class ResetPasswordForm(NewPasswordMixin, FlaskForm):
    pass


__all__ = ["EmailOnlyForm", "LoginForm", "ResetPasswordForm", "SignUpForm"]
