"""Back-office forms: families, staff, document types, activities with their closing days,
enrolments and days entered by the service, tariffs and payments."""

import re
import secrets
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    FormField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from portail.bookings.rules import WEEKDAY_CHOICES
from portail.formatting import PARIS
from portail.forms import (
    REQUIRED,
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
from portail.models import Activity, DeadlineKind, OpenPeriod, Role, ValidationMode, utcnow
from portail.services import billing
from portail.services.billing import BillingError

DEADLINE_FIELDS = ("kind", "days", "time", "working_days", "weekday")
DEFAULT_HOLD_MINUTES = 120  # a place freed is held two hours for the first in line, unless said otherwise
BRACKET_ROWS = 6
# The hidden key of a payment form as rendered (secrets.token_urlsafe(16): 22 characters).
PAYMENT_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


class Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class HoursField(StringField):
    """A duration typed in hours ("1,5" or "1.5"); its data is in whole minutes (None when empty)."""

    def process_formdata(self, valuelist) -> None:
        text = (valuelist[0] if valuelist else "").strip().replace(",", ".")
        self.data = None
        if text:
            try:
                hours = Decimal(text)
            except InvalidOperation:
                hours = None
            if hours is None or not hours.is_finite():
                raise ValueError("Indiquez un nombre d'heures, par exemple 2 ou 1,5.")
            self.data = round(hours * 60)

    def pre_validate(self, form) -> None:
        if self.process_errors:  # (not a number: its range is not checked, one message is enough)
            raise StopValidation()

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        if self.data is None:
            return ""
        return f"{Decimal(self.data) / 60:.2f}".rstrip("0").rstrip(".").replace(".", ",")


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
        choices=[
            (Role.AGENT.value, "Gestionnaire"),
            (Role.ANIMATOR.value, "Animateur (pointage seulement)"),
            (Role.ADMIN.value, "Administrateur"),
        ],
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


def _deadline_fields(prefix: str, label: str):
    return {
        f"{prefix}_kind": SelectField(
            f"{label} : type de délai",
            choices=[
                ("days_before", "N jours avant, à une heure donnée"),
                ("previous_week", "Un jour de la semaine précédente"),
            ],
        ),
        f"{prefix}_days": IntegerField(
            f"{label} : nombre de jours",
            validators=[Optional(), NumberRange(min=0, max=60, message="Entre 0 et 60 jours.")],
            default=2,
        ),
        f"{prefix}_time": TimeField(
            f"{label} : heure limite", validators=[InputRequired(message=REQUIRED)], default=None
        ),
        f"{prefix}_working_days": BooleanField(
            f"{label} : compter en jours ouvrés (hors week-ends et jours fériés)", default=True
        ),
        f"{prefix}_weekday": SelectField(
            f"{label} : jour de la semaine précédente",
            choices=[("", "—")] + WEEKDAY_CHOICES,
            validators=[Optional()],
        ),
    }


class ActivityForm(FlaskForm):
    name = StringField("Nom", validators=[required(), Length(max=100)])
    site = StringField("Site", validators=[Optional(), Length(max=100)])
    weekdays = Checkboxes(
        "Jours d'ouverture",
        choices=WEEKDAY_CHOICES,
        validators=[InputRequired(message="Cochez au moins un jour.")],
    )
    start_date = DateField("Du", validators=[InputRequired(message=REQUIRED)])
    end_date = DateField("Au", validators=[InputRequired(message=REQUIRED)])
    capacity = IntegerField(
        "Capacité par jour",
        validators=[Optional(), NumberRange(min=0, max=10000, message="Entre 0 et 10000.")],
        description="Laisser vide : pas de limite.",
    )
    validation_mode = SelectField(
        "Validation des demandes",
        choices=[
            ("manuelle", "Manuelle (par un agent)"),
            ("automatique", "Automatique (acceptée si toutes les règles sont respectées)"),
        ],
    )
    open_period = SelectField(
        "Période d'ouverture",
        choices=[
            ("school_days", "Hors vacances scolaires"),
            ("holidays", "Pendant les vacances scolaires seulement"),
            ("all", "Toute l'année"),
        ],
    )
    closed_on_public_holidays = BooleanField("Fermé les jours fériés", default=True)
    waiting_list = BooleanField(
        "Liste d'attente quand l'activité est complète",
        description="Un jour complet, les familles peuvent s'inscrire sur sa liste d'attente : une place "
        "libérée est proposée à la première de la liste.",
    )
    waiting_list_max = IntegerField(
        "Longueur maximale de la liste d'attente",
        validators=[Optional(), NumberRange(min=1, max=1000, message="Entre 1 et 1000.")],
        description="Par jour. Laisser vide : sans limite.",
        render_kw={"inputmode": "numeric"},
    )
    offer_hold_hours = HoursField(
        "Délai pour confirmer une place libérée (en heures)",
        validators=[
            Optional(),
            NumberRange(
                min=30, max=72 * 60, message="Indiquez entre 0,5 et 72 heures (par exemple 2 ou 1,5)."
            ),
        ],
        description="Jamais au-delà de la date limite de réservation ; en validation manuelle, la place "
        "attend la décision d'un agent. Laisser vide : 2 heures.",
        default=DEFAULT_HOLD_MINUTES,
        render_kw={"inputmode": "decimal"},
    )

    def fill(self, activity: Activity) -> None:
        """Show an activity's rules in the form."""
        self.name.data, self.site.data = activity.name, activity.site
        self.weekdays.data = list(activity.weekdays)
        self.start_date.data, self.end_date.data = activity.start_date, activity.end_date
        self.capacity.data = activity.capacity
        self.validation_mode.data = activity.validation_mode.value
        self.open_period.data = activity.open_period.value
        self.closed_on_public_holidays.data = activity.closed_on_public_holidays
        self.waiting_list.data, self.waiting_list_max.data = activity.waiting_list, activity.waiting_list_max
        self.offer_hold_hours.data = activity.offer_hold_minutes
        for prefix in ("booking_deadline", "absence_deadline"):
            for name in DEADLINE_FIELDS:
                value = getattr(activity, f"{prefix}_{name}")
                self[f"{prefix}_{name}"].data = (
                    value.value if name == "kind" else (str(value) if name == "weekday" and value else value)
                )

    def values(self) -> dict:
        """The activity's columns as entered (for services.activities.save_activity)."""
        values = {
            "name": self.name.data.strip(),
            "site": (self.site.data or "").strip() or None,
            "weekdays": "".join(sorted(self.weekdays.data)),
            "start_date": self.start_date.data,
            "end_date": self.end_date.data,
            "capacity": self.capacity.data,
            "validation_mode": ValidationMode(self.validation_mode.data),
            "open_period": OpenPeriod(self.open_period.data),
            "closed_on_public_holidays": self.closed_on_public_holidays.data,
            "waiting_list": self.waiting_list.data,
            "waiting_list_max": self.waiting_list_max.data,
            "offer_hold_minutes": DEFAULT_HOLD_MINUTES
            if self.offer_hold_hours.data is None
            else self.offer_hold_hours.data,
        }
        for prefix in ("booking_deadline", "absence_deadline"):
            weekday = self[f"{prefix}_weekday"].data
            values |= {
                f"{prefix}_kind": DeadlineKind(self[f"{prefix}_kind"].data),
                f"{prefix}_days": self[f"{prefix}_days"].data or 0,
                f"{prefix}_time": self[f"{prefix}_time"].data,
                f"{prefix}_working_days": self[f"{prefix}_working_days"].data,
                f"{prefix}_weekday": int(weekday) if weekday else None,
            }
        return values

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.start_date.data and self.end_date.data and self.start_date.data > self.end_date.data:
            self.end_date.errors.append("La date de fin doit être après la date de début.")
            valid = False
        if self.waiting_list.data and self.capacity.data is None and not self.capacity.errors:
            self.capacity.errors.append("Une liste d'attente suppose une capacité par jour : indiquez-la.")
            valid = False
        for prefix in ("booking_deadline", "absence_deadline"):
            kind, weekday, days = self[f"{prefix}_kind"], self[f"{prefix}_weekday"], self[f"{prefix}_days"]
            if kind.data == "previous_week" and not weekday.data:
                weekday.errors.append("Choisissez le jour de la semaine précédente.")
                valid = False
            if kind.data == "days_before" and days.data is None:
                days.errors.append("Indiquez le nombre de jours.")
                valid = False
        return valid


for _prefix, _label in (("booking_deadline", "Réservation"), ("absence_deadline", "Absence")):
    for _name, _field in _deadline_fields(_prefix, _label).items():
        setattr(ActivityForm, _name, _field)


class ClosingDayForm(FlaskForm):
    day = DateField("Jour de fermeture", validators=[InputRequired(message=REQUIRED)])
    reason = StringField(
        "Motif",
        validators=[required(), Length(max=100)],
        description="Par exemple : grève, sortie scolaire, travaux",
    )


class EnrolmentForm(FlaskForm):
    children = Checkboxes(
        "Enfants", coerce=int, validators=[InputRequired(message="Choisissez au moins un enfant.")]
    )
    activity = SelectField("Activité", coerce=int)
    start_date = DateField("Du", validators=[InputRequired(message=REQUIRED)])
    end_date = DateField("Au", validators=[InputRequired(message=REQUIRED)])
    weekdays = Checkboxes(
        "Jours (facultatif : tous les jours d'ouverture si aucun)",
        choices=WEEKDAY_CHOICES,
        validators=[Optional()],
    )

    def values(self) -> dict:
        """The enrolment as entered (for services.activities.enrol); no day ticked: every opening day."""
        return dict(
            activity_id=self.activity.data,
            start_date=self.start_date.data,
            end_date=self.end_date.data,
            weekdays="".join(sorted(self.weekdays.data or [])) or None,
        )

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.start_date.data and self.end_date.data and self.start_date.data > self.end_date.data:
            self.end_date.errors.append("La date de fin doit être après la date de début.")
            valid = False
        return valid


class DayEntryForm(FlaskForm):
    """A day entered by the service for a child (phone call, child present without a booking)."""

    child = SelectField(
        "Enfant", coerce=int, validate_choice=False, validators=[DataRequired(message="Choisissez l'enfant.")]
    )
    activity = SelectField(
        "Activité",
        coerce=int,
        validate_choice=False,
        validators=[DataRequired(message="Choisissez l'activité.")],
    )
    day = DateField("Jour", validators=[InputRequired(message="Saisissez le jour.")])
    kind = RadioField(
        "Saisie",
        choices=[("reservation", "Réservation (l'enfant participe)"), ("absence", "Absence")],
        validators=[InputRequired(message="Choisissez réservation ou absence.")],
    )

    def validate_child(self, field) -> None:
        if field.data not in {value for value, _label in field.choices if value}:
            raise ValidationError("Choisissez l'enfant.")  # one of this family's children, nothing else

    def validate_activity(self, field) -> None:
        if field.data not in {value for value, _label in field.choices if value}:
            raise ValidationError("Choisissez l'activité.")


def _euros_field(label: str, description: str = "En euros, par exemple 3,30", **kwargs) -> StringField:
    return StringField(
        label,
        description=description,
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
    # From the registers, once a day's register is closed
    bill_unexcused_absences = BooleanField(
        "Facturer les absences injustifiées (réservé, absent au pointage, sans absence déclarée)"
    )
    unbooked_price = _euros_field(
        "Prix d'une présence sans réservation",
        description="En euros ; vide : le prix du jour selon la tranche de la famille.",
        validators=[_check_euros],
    )
    unbooked_surcharge = _euros_field("Majoration par présence sans réservation", validators=[_check_euros])
    sick_days_billed = IntegerField(
        "Jours de carence facturés en cas de maladie",
        validators=[
            InputRequired("Saisissez le nombre de jours."),
            NumberRange(min=0, max=30, message="Entre 0 et 30."),
        ],
    )
    sick_certificate_days = IntegerField(
        "Délai d'envoi du certificat médical (jours après le premier jour de maladie)",
        validators=[
            InputRequired("Saisissez le délai."),
            NumberRange(min=0, max=60, message="Entre 0 et 60 jours."),
        ],
    )
    brackets = FieldList(
        FormField(BracketForm), label="Tranche", min_entries=BRACKET_ROWS, max_entries=BRACKET_ROWS
    )
    childcare = BooleanField(
        "Frais de garde (comptent dans l'attestation fiscale)",
        description="Accueils périscolaires et de loisirs : les jours de garde des enfants de moins de 6 ans "
        "figurent sur l'attestation fiscale. Pas la restauration scolaire (les repas n'en sont pas).",
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

    def unbooked_cents(self) -> tuple[int | None, int]:
        """The price of a presence without booking (None: the day's) and its surcharge, in cents."""
        price, surcharge = (
            (self.unbooked_price.data or "").strip(),
            (self.unbooked_surcharge.data or "").strip(),
        )
        return (
            billing.parse_euros(price) if price else None,
            billing.parse_euros(surcharge) if surcharge else 0,
        )


class PaymentForm(FlaskForm):
    # One random key per form shown: its copies (a double click, a resent page) are one payment,
    # two forms are two payments even with the same values (two cheques of the same amount).
    key = HiddenField()
    paid_on = DateField("Date du paiement", validators=[required("Saisissez la date du paiement.")])
    amount = _euros_field("Montant", validators=[required("Saisissez le montant."), _check_euros])
    method = SelectField(
        "Moyen de paiement",
        choices=[("", "— Choisir —")] + [(m.name, billing.METHOD_LABELS[m]) for m in billing.ENTERED_METHODS],
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


class OpeningForm(FlaskForm):
    """An opening of registration: activities, the day and time in Paris, the queue, the fast path."""

    activities = Checkboxes(
        "Activités concernées",
        coerce=int,
        validators=[InputRequired(message="Cochez au moins une activité.")],
    )
    day = DateField("Jour d'ouverture", validators=[InputRequired(message="Saisissez le jour d'ouverture.")])
    hour = TimeField(
        "Heure d'ouverture (heure de Paris)",
        validators=[InputRequired(message="Saisissez l'heure d'ouverture (exemple : 08:30).")],
    )
    queue_minutes = IntegerField(
        "File d'attente ouverte avant (minutes)",
        default=30,
        validators=[
            InputRequired(message="Saisissez un nombre de minutes."),
            NumberRange(min=0, max=240, message="Entre 0 et 240 minutes."),
        ],
        description="Les parents qui arrivent avant l'ouverture prennent un ticket dans leur ordre d'arrivée.",
    )
    fast_path_minutes = IntegerField(
        "Temps laissé à un parent admis (minutes)",
        default=20,
        validators=[
            InputRequired(message="Saisissez un nombre de minutes."),
            NumberRange(min=1, max=240, message="Entre 1 et 240 minutes."),
        ],
        description="Pendant ce temps, le parent admis réserve sans repasser par la file.",
    )

    def fill(self, opening) -> None:
        local = opening.opens_at.astimezone(PARIS)
        self.activities.data = [activity.id for activity in opening.activities]
        self.day.data, self.hour.data = local.date(), local.time().replace(second=0)
        self.queue_minutes.data = int((opening.opens_at - opening.queue_from).total_seconds() // 60)
        self.fast_path_minutes.data = opening.fast_path_minutes

    def opens_at(self) -> datetime:
        """The opening instant (aware, UTC) of the day and time typed in Paris time."""
        return paris_instant(self.day.data, self.hour.data)

    def values(self) -> dict:
        opens_at = self.opens_at()
        return {
            "activity_ids": self.activities.data,
            "opens_at": opens_at,
            "queue_from": opens_at - timedelta(minutes=self.queue_minutes.data),
            "fast_path_minutes": self.fast_path_minutes.data,
        }

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        local = datetime.combine(self.day.data, self.hour.data.replace(second=0, microsecond=0))
        if self.opens_at().astimezone(PARIS).replace(tzinfo=None) != local:
            self.hour.errors.append("Cette heure n'existe pas ce jour-là (passage à l'heure d'été).")
            return False
        if self.opens_at() <= utcnow():
            self.day.errors.append("L'ouverture doit être dans le futur.")
            return False
        return True


def paris_instant(day: date, moment: time) -> datetime:
    """A day and a time of day in Paris as an aware UTC instant (at the exact minute; the earlier of
    an hour that happens twice)."""
    return datetime.combine(day, moment.replace(second=0, microsecond=0), tzinfo=PARIS).astimezone(UTC)
