"""Back-office forms of activities, closing days and enrolments."""

from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from portail.bookings.rules import WEEKDAY_CHOICES
from portail.forms import REQUIRED, FlaskForm, required
from portail.models import Activity, DeadlineKind, OpenPeriod, ValidationMode

DEADLINE_FIELDS = ("kind", "days", "time", "working_days", "weekday")


class Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


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

    def fill(self, activity: Activity) -> None:
        """Show an activity's rules in the form."""
        self.name.data, self.site.data = activity.name, activity.site
        self.weekdays.data = list(activity.weekdays)
        self.start_date.data, self.end_date.data = activity.start_date, activity.end_date
        self.capacity.data = activity.capacity
        self.validation_mode.data = activity.validation_mode.value
        self.open_period.data = activity.open_period.value
        self.closed_on_public_holidays.data = activity.closed_on_public_holidays
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
