"""Forms of the sections of the family file (used by parents and by agents), and the glue between them
and the dossier service: a section's form built from a file, its values read back."""

import re
from datetime import date

from flask_wtf.file import FileField, FileRequired
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from wtforms import BooleanField, DateField, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from portail.forms import (
    REQUIRED,
    FlaskForm,
    check_optional_email,
    civility_field,
    phone_field,
    required,
    strip,
    validate_phone,
)
from portail.models import Diet
from portail.services import dossier


def text(label: str, max_length: int = 100, mandatory: bool = False, **kwargs) -> StringField:
    checks = [required()] if mandatory else [Optional()]
    return StringField(
        label,
        validators=[*checks, Length(max=max_length, message=f"{max_length} caractères au maximum.")],
        filters=[strip],
        **kwargs,
    )


def long_text(label: str, description: str | None = None) -> TextAreaField:
    return TextAreaField(
        label,
        validators=[Optional(), Length(max=2000, message="2000 caractères au maximum.")],
        filters=[strip],
        description=description,
    )


def check_phones(form) -> None:
    for name in ("phone", "phone_home", "phone_work", "doctor_phone"):
        field = getattr(form, name, None)
        if field is not None and field.data:
            try:
                validate_phone(form, field)
            except ValidationError as error:
                field.errors.append(str(error))


class SectionForm(FlaskForm):
    """Runs the phone checks of every section on top of the field validators."""

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        before = sum(len(f.errors) for f in self)
        check_phones(self)
        return valid and sum(len(f.errors) for f in self) == before


def plausible_birth_date(low_years: int, high_years: int, message: str):
    def check(form, field):
        if field.data is None:
            return
        today = date.today()
        if (
            not (date(today.year - high_years, 1, 1) <= field.data <= date(today.year - low_years, 12, 31))
            or field.data > today
        ):
            raise ValidationError(message)

    return check


class GuardianBaseForm(SectionForm):
    civility = civility_field()
    last_name = text("Nom", mandatory=True)
    first_name = text("Prénom", mandatory=True)
    birth_date = DateField(
        "Date de naissance",
        validators=[Optional(), plausible_birth_date(16, 110, "Date de naissance invraisemblable.")],
    )
    phone = phone_field("Téléphone portable")
    phone_home = phone_field("Téléphone du domicile")
    phone_work = phone_field("Téléphone professionnel")
    email = text("Adresse e-mail", 254, render_kw={"autocomplete": "email", "type": "email"})
    profession = text("Profession")

    def validate_email(self, field) -> None:
        check_optional_email(self, field)


class AddressForm(SectionForm):
    address_line1 = text(
        "Adresse",
        150,
        mandatory=True,
        render_kw={"autocomplete": "address-line1"},
        description="Numéro et voie, par exemple : 12 rue des Écoles",
    )
    address_line2 = text("Complément d'adresse", 150, render_kw={"autocomplete": "address-line2"})
    postcode = text(
        "Code postal", 5, mandatory=True, render_kw={"autocomplete": "postal-code", "inputmode": "numeric"}
    )
    city = text("Commune", mandatory=True, render_kw={"autocomplete": "address-level2"})

    def validate_postcode(self, field) -> None:
        if field.data and not re.fullmatch(r"\d{5}", field.data):
            raise ValidationError("Le code postal doit comporter 5 chiffres.")


class TaxForm(SectionForm):
    tax_regime = SelectField(
        "Régime",
        choices=[("", "—"), ("CAF", "CAF"), ("MSA", "MSA"), ("Autre", "Autre")],
        validators=[Optional()],
    )
    allocataire_number = text("Numéro d'allocataire", 20, render_kw={"inputmode": "numeric"})
    quotient = IntegerField(
        "Quotient familial",
        validators=[
            Optional(),
            NumberRange(
                min=0, max=99999, message="Le quotient familial doit être un nombre entre 0 et 99999."
            ),
        ],
        render_kw={"inputmode": "numeric"},
    )
    quotient_valid_until = DateField("Quotient valable jusqu'au", validators=[Optional()])

    def validate_allocataire_number(self, field) -> None:
        if field.data and not re.fullmatch(r"\d{1,20}", field.data):
            raise ValidationError("Le numéro d'allocataire ne contient que des chiffres.")

    def validate(self, extra_validators=None) -> bool:
        """Fields that become required with another one (empty optional fields skip their checks)."""
        valid = super().validate(extra_validators)
        if self.tax_regime.data in ("CAF", "MSA") and not self.allocataire_number.data:
            self.allocataire_number.errors.append("Indiquez votre numéro d'allocataire CAF ou MSA.")
            valid = False
        if (
            self.quotient.data is not None
            and self.quotient_valid_until.data is None
            and not self.quotient_valid_until.errors
        ):
            self.quotient_valid_until.errors.append(
                "Indiquez jusqu'à quand ce quotient familial est valable."
            )
            valid = False
        return valid


class BankForm(SectionForm):
    bank_holder = text("Titulaire du compte", mandatory=True)
    iban = StringField(
        "IBAN",
        validators=[required(), Length(max=42, message="IBAN trop long.")],
        filters=[strip],
        description="27 caractères pour un compte français (FR76…), espaces permis. Pour votre sécurité, il n'est jamais réaffiché en entier.",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    bic = text(
        "BIC",
        11,
        description="Facultatif si votre banque est française : il est déduit de l'IBAN.",
        render_kw={"spellcheck": "false"},
    )

    def validate_iban(self, field) -> None:
        try:
            iban = IBAN(field.data or "")
        except SchwiftyException:
            raise ValidationError("IBAN invalide : vérifiez chaque caractère.") from None
        field.data = iban.compact
        if not self.bic.data and iban.bic is not None:
            self.bic.data = str(iban.bic)

    def validate_bic(self, field) -> None:
        if not field.data:
            raise ValidationError("Indiquez le BIC de votre banque.")
        try:
            field.data = str(BIC(field.data.replace(" ", "").upper()))
        except SchwiftyException:
            raise ValidationError("BIC invalide (8 ou 11 caractères, par exemple BNPAFRPP).") from None


class ChildGeneralForm(SectionForm):
    last_name = text("Nom", mandatory=True)
    first_name = text("Prénom", mandatory=True)
    birth_date = DateField(
        "Date de naissance",
        validators=[
            InputRequired(message=REQUIRED),
            plausible_birth_date(0, 25, "Date de naissance invraisemblable pour un enfant."),
        ],
    )
    sex = SelectField("Sexe", choices=[("", "—"), ("F", "Fille"), ("M", "Garçon")], validators=[Optional()])
    school = text("École")
    school_class = text("Classe", 30, description="Par exemple : CP, CE2, Moyenne section")


class HealthForm(SectionForm):
    doctor_name = text("Médecin traitant")
    doctor_phone = phone_field("Téléphone du médecin")
    allergies = long_text("Allergies", "Aliments, médicaments, piqûres… Laissez vide s'il n'y en a pas.")
    diet = SelectField(
        "Régime alimentaire",
        choices=[("", "Standard"), *((diet.value, diet.label) for diet in Diet)],
        validators=[Optional()],
        filters=[lambda value: value or ""],  # (None, the standard meal, selects "Standard")
        description="Le repas que la cuisine prépare pour votre enfant.",
    )
    diet_other = text(
        "Précision du régime",
        description="Obligatoire si vous choisissez « Autre » : par exemple sans gluten, sans lactose.",
    )
    pai = BooleanField("Mon enfant a un PAI (projet d'accueil individualisé)")
    vaccinations = long_text("Vaccinations", "Vaccins obligatoires à jour, dates des derniers rappels…")
    health_notes = long_text("Observations", "Tout ce que l'équipe d'animation doit savoir.")

    def validate(self, extra_validators=None) -> bool:
        """A precision goes with "Autre" only (another choice forgets a precision left typed)."""
        valid = super().validate(extra_validators)
        if self.diet.data != Diet.OTHER.value:
            self.diet_other.data = None
        elif not self.diet_other.data and not self.diet_other.errors:
            self.diet_other.errors.append("Précisez le régime alimentaire de votre enfant (choix « Autre »).")
            valid = False
        return valid


class PhotoForm(FlaskForm):
    photo = FileField(
        "Photo de l'enfant",
        validators=[FileRequired(message="Choisissez une photo.")],
        description="JPEG ou PNG, 5 Mo au plus. Les informations cachées de la photo (lieu, appareil) sont supprimées.",
        render_kw={"accept": "image/jpeg,image/png", "capture": "environment"},
    )


class ContactForm(SectionForm):
    last_name = text("Nom", mandatory=True)
    first_name = text("Prénom", mandatory=True)
    relationship_label = text(
        "Lien avec l'enfant", 50, mandatory=True, description="Par exemple : grand-mère, voisin, oncle"
    )
    phone = StringField(
        "Téléphone",
        validators=[required(), Length(max=30)],
        filters=[strip],
        render_kw={"autocomplete": "tel", "inputmode": "tel"},
    )
    can_pick_up = BooleanField("Peut venir chercher l'enfant")
    emergency_call = BooleanField("À appeler en cas d'urgence")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not self.can_pick_up.data and not self.emergency_call.data:
            self.can_pick_up.errors.append("Cochez au moins un rôle pour ce contact.")
            valid = False
        return valid


def authorizations_form(authorizations, data=None):
    """A form with one required oui/non question per authorisation of the town."""

    class AuthorizationsForm(FlaskForm):
        pass

    for authorization in authorizations:
        setattr(
            AuthorizationsForm,
            f"auth_{authorization.id}",
            RadioField(
                authorization.label,
                choices=[("oui", "Oui"), ("non", "Non")],
                validators=[InputRequired(message="Répondez oui ou non.")],
                description=authorization.description,
            ),
        )
    if data is not None:
        return AuthorizationsForm(formdata=None, data=data)
    return AuthorizationsForm()


FORMS = {
    "base": GuardianBaseForm,
    "address": AddressForm,
    "tax": TaxForm,
    "bank": BankForm,
    "general": ChildGeneralForm,
    "new_child": ChildGeneralForm,
    "health": HealthForm,
    "contact": ContactForm,
}


def build_form(section_name: str, target, submitted: bool):
    """The form of a section: the posted data when submitted, else the validated values of `target`."""
    section = dossier.SECTIONS[section_name]
    if section_name == "authorizations":
        current = dossier.snapshot(section, target)
        data = {f"auth_{key}": ("oui" if granted else "non") for key, granted in current.items()}
        return authorizations_form(dossier.active_authorizations(), data=None if submitted else data)
    form_class = PhotoForm if section_name == "photo" else FORMS[section_name]
    if submitted:
        return form_class()
    if target is None or section_name == "photo":
        return form_class(formdata=None)
    data = {field: _form_value(field, target) for field, _label in section.fields}
    return form_class(formdata=None, data=data)


def _form_value(field: str, target):
    value = getattr(target, field)
    if field == "iban":
        return ""  # never sent back to the browser
    if hasattr(value, "value"):
        return value.value
    return value


def form_values(section_name: str, form) -> dict:
    """The section's values taken from the form: only the section's own fields."""
    section = dossier.SECTIONS[section_name]
    if section_name == "authorizations":
        return {
            name.removeprefix("auth_"): field.data == "oui"
            for name, field in form._fields.items()
            if name.startswith("auth_")
        }
    return {field: form[field].data for field, _label in section.fields}
