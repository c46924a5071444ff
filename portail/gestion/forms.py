"""Back-office forms."""

from datetime import date

from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    FormField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, Optional

from portail.forms import (
    FlaskForm,
    Subform,
    check_optional_email,
    civility_field,
    email_field,
    name_field,
    phone_field,
    required,
    strip,
    validate_phone,
)
from portail.gestion.activity_forms import Checkboxes
from portail.models import Role


class GuardianForm(Subform):
    civility = civility_field()
    last_name = StringField("Nom", validators=[Optional(), Length(max=100)], filters=[strip])
    first_name = StringField("Prénom", validators=[Optional(), Length(max=100)], filters=[strip])
    email = StringField("Adresse e-mail", validators=[Optional(), Length(max=254)], filters=[strip])
    phone = phone_field()

    def validate_phone(self, field) -> None:
        validate_phone(self, field)

    def validate_email(self, field) -> None:
        check_optional_email(self, field)

    def is_blank(self) -> bool:
        return not any([self.last_name.data, self.first_name.data, self.email.data, self.phone.data])


class ChildForm(Subform):
    id = HiddenField()
    last_name = StringField("Nom", validators=[Optional(), Length(max=100)], filters=[strip])
    first_name = StringField("Prénom", validators=[Optional(), Length(max=100)], filters=[strip])
    birth_date = DateField("Date de naissance", validators=[Optional()])
    remove = BooleanField("Retirer cet enfant du dossier")

    def is_blank(self) -> bool:
        return not any([self.last_name.data, self.first_name.data, self.birth_date.data])


class FamilyForm(FlaskForm):
    name = StringField(
        "Nom de la famille",
        validators=[required(), Length(max=150, message="150 caractères au maximum.")],
        filters=[strip],
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


class DocumentTypeForm(FlaskForm):
    name = StringField("Nom", validators=[required(), Length(max=120, message="120 caractères au plus.")])
    description = TextAreaField(
        "Description pour les familles", validators=[Length(max=1000, message="1000 caractères au plus.")]
    )
    scope = RadioField(
        "Demandé",
        choices=[("family", "Une fois pour la famille"), ("child", "Pour chaque enfant")],
        validators=[required("Choisissez pour qui.")],
    )
    required_doc = BooleanField("Obligatoire")
    validity = RadioField(
        "Validité",
        choices=[
            ("none", "Sans limite"),
            ("one_year", "Un an"),
            ("school_year", "Jusqu'à la fin de l'année scolaire (31 août)"),
        ],
        validators=[required("Choisissez la validité.")],
    )
    formats = Checkboxes(
        "Formats acceptés",
        choices=[("pdf", "PDF"), ("jpeg", "JPEG"), ("png", "PNG")],
        validators=[required("Cochez au moins un format.")],
    )
    active = BooleanField("Demandé actuellement")
