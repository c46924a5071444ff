"""Forms of Mon espace citoyen."""

from wtforms import BooleanField, RadioField
from wtforms.validators import InputRequired, ValidationError

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


class CalendarFeedForm(FlaskForm):
    """A calendar address for a family: its whole family's days, or one child's."""

    WHOLE_FAMILY = "famille"

    scope = RadioField(
        "Jours à afficher",
        validate_choice=False,  # (validate_scope says it in French)
        validators=[InputRequired("Choisissez les jours à afficher : toute la famille ou un enfant.")],
    )

    def validate_scope(self, field) -> None:
        if field.data not in {value for value, _label in field.choices}:
            raise ValidationError("Choisissez les jours à afficher parmi ceux proposés.")

    def offer(self, children) -> "CalendarFeedForm":
        """The whole family, then each child (by first name), as the choices."""
        self.scope.choices = [(self.WHOLE_FAMILY, "Toute la famille")] + [
            (str(child.id), child.first_name) for child in children
        ]
        return self

    def child(self, children):
        """The child chosen (None: the whole family)."""
        return next((child for child in children if str(child.id) == self.scope.data), None)


class NotificationsForm(FlaskForm):
    """Mon compte → Notifications: what the parent receives by mail, and when."""

    receipts = RadioField(
        "Accusés de réception de vos demandes",
        validate_choice=False,  # (validate_receipts says it in French)
        validators=[InputRequired("Choisissez si vous voulez recevoir les accusés de réception.")],
    )
    decisions = RadioField(
        "Réponses de la mairie à vos demandes",
        validate_choice=False,
        validators=[InputRequired("Choisissez comment recevoir les réponses de la mairie.")],
    )

    def __init__(self, *args, **kwargs):
        from portail.models import DecisionsChoice, ReceiptsChoice

        super().__init__(*args, **kwargs)
        self.receipts.choices = [(choice.name, choice.label) for choice in ReceiptsChoice]
        self.decisions.choices = [(choice.name, choice.label) for choice in DecisionsChoice]

    def validate_receipts(self, field) -> None:
        if field.data not in {value for value, _label in field.choices}:
            raise ValidationError("Choisissez l'un des choix proposés pour les accusés de réception.")

    def validate_decisions(self, field) -> None:
        if field.data not in {value for value, _label in field.choices}:
            raise ValidationError("Choisissez l'un des choix proposés pour les réponses de la mairie.")
