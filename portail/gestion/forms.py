"""Back-office forms."""

from datetime import date

from wtforms import BooleanField, DateField, FieldList, FormField, HiddenField, SelectField, StringField
from wtforms.validators import Length, Optional

from portail.forms import (
    FlaskForm,
    check_optional_email,
    civility_field,
    email_field,
    name_field,
    phone_field,
    required,
    validate_phone,
)
from portail.models import Role


class _Subform(FlaskForm):
    class Meta:
        csrf = False


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class GuardianForm(_Subform):
    civility = civility_field()
    last_name = StringField("Nom", validators=[Optional(), Length(max=100)], filters=[_strip])
    first_name = StringField("Prénom", validators=[Optional(), Length(max=100)], filters=[_strip])
    email = StringField("Adresse e-mail", validators=[Optional(), Length(max=254)], filters=[_strip])
    phone = phone_field()

    def validate_phone(self, field) -> None:
        validate_phone(self, field)

    def validate_email(self, field) -> None:
        check_optional_email(self, field)

    def is_blank(self) -> bool:
        return not any([self.last_name.data, self.first_name.data, self.email.data, self.phone.data])


class ChildForm(_Subform):
    id = HiddenField()
    last_name = StringField("Nom", validators=[Optional(), Length(max=100)], filters=[_strip])
    first_name = StringField("Prénom", validators=[Optional(), Length(max=100)], filters=[_strip])
    birth_date = DateField("Date de naissance", validators=[Optional()])
    remove = BooleanField("Retirer cet enfant du dossier")

    def is_blank(self) -> bool:
        return not any([self.last_name.data, self.first_name.data, self.birth_date.data])


class FamilyForm(FlaskForm):
    name = StringField(
        "Nom de la famille",
        validators=[required(), Length(max=150, message="150 caractères au maximum.")],
        filters=[_strip],
        description="Tel qu'il apparaît sur les courriers, par exemple : Famille MARTIN.",
    )
    guardian1 = FormField(GuardianForm, label="Responsable 1")
    guardian2 = FormField(GuardianForm, label="Responsable 2 (facultatif)")
    children = FieldList(FormField(ChildForm), label="Enfants", min_entries=1)

    def validate(self, extra_validators=None) -> bool:
        """Responsable 1 needs a name; each child line is complete or empty; birth dates are plausible."""
        valid = super().validate(extra_validators)
        for key, guardian in (("guardian1", self.guardian1.form), ("guardian2", self.guardian2.form)):
            if key == "guardian2" and guardian.is_blank():
                continue
            for field in (guardian.last_name, guardian.first_name):
                if not field.data:
                    field.errors.append("Ce champ est obligatoire.")
                    valid = False
        today = date.today()
        for entry in self.children:
            child = entry.form
            if child.is_blank() or child.remove.data:
                continue
            for field in (child.last_name, child.first_name, child.birth_date):
                if not field.data and not field.errors:
                    field.errors.append("Ce champ est obligatoire.")
                    valid = False
            born = child.birth_date.data
            if born and not (date(today.year - 25, 1, 1) <= born <= today):
                child.birth_date.errors.append("Date de naissance invraisemblable pour un enfant.")
                valid = False
        return valid


class StaffForm(FlaskForm):
    civility = civility_field()
    last_name = name_field("Nom", "family-name")
    first_name = name_field("Prénom", "given-name")
    email = email_field()
    role = SelectField(
        "Rôle",
        choices=[(Role.AGENT.value, "Gestionnaire"), (Role.ADMIN.value, "Administrateur")],
        validators=[required()],
    )


class SearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField("Rechercher une famille", validators=[Optional(), Length(max=100)])
