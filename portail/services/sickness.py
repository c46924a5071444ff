"""Sick days: what a town bills of the days a family declared its child sick.

A sickness is a run of declared days no more than SAME_SICKNESS_GAP days apart (a Friday and the
Monday after are one sickness). Its first `billed` days are billed (the *carence*); the days after
are free when a medical certificate was sent within `certificate_days` days of its first day, and
billed otherwise. The planning's preview and billing both ask `sick_days`, so the parent is told
before sending what the invoice will say.

The declarations themselves: what the planning's confirmation shows (`preview`), a declaration with
its optional medical certificate (`declare`; the day's change is `bookings.declare_sick`), the
certificate sent afterwards (`attach_certificate`), and the lists of the family and of the staff.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from portail import bookings
from portail.extensions import db
from portail.formatting import euros, french_date, today_in_paris
from portail.models import (
    Activity,
    Booking,
    BookingState,
    Child,
    Document,
    DocumentScope,
    DocumentState,
    DocumentType,
    Family,
    SickDeclaration,
    Tariff,
    User,
    Validity,
)
from portail.services import documents
from portail.services.billing import runs
from portail.services.billing import tariffs as billing_tariffs
from portail.services.billing.sick_days import (  # noqa: F401  (the rule, named here for the planning)
    BILLED,
    CARENCE,
    CERTIFIED,
    SAME_SICKNESS_GAP,
    UNCERTIFIED,
    sick_days,
)
from portail.services.transactions import Conflict

CERTIFICATE_TYPE = "Certificat médical"
# Without a tariff in force, the certificate's delay is the tariffs' default.
DEFAULT_CERTIFICATE_DAYS = Tariff.__table__.c.sick_certificate_days.default.arg


class SicknessError(ValueError):
    """A certificate refused (too late); the message is French."""


class CertificateSent(SicknessError):
    """The certificate is already sent (the same form sent twice): said calmly."""


@dataclass(frozen=True)
class Billed:
    """What the invoice will say of one activity of a declared day."""

    activity: str
    rule: str | None  # CARENCE, CERTIFIED or UNCERTIFIED; None: no tariff in force that day
    price: int | None  # cents
    until: date  # the last day a certificate counts for this sickness
    today: date

    @property
    def text(self) -> str:
        """ "facturé 4,20 € (carence)", "non facturé si vous envoyez un certificat médical au plus tard
        le …", "facturé 4,20 € : pas de certificat"."""
        if self.rule is None:
            return "non facturé : pas de tarif en vigueur ce jour-là"
        if self.rule == CARENCE:
            return f"facturé {euros(self.price)} (carence)"
        if self.rule == CERTIFIED:
            return "non facturé : certificat médical envoyé"
        if self.today <= self.until:
            return (
                "non facturé si vous envoyez un certificat médical au plus tard le "
                f"{french_date(self.until, weekday=True)} (sinon facturé {euros(self.price)})"
            )
        return f"facturé {euros(self.price)} : pas de certificat"


def billed(
    family: Family, child: Child, day: date, activities: list[Activity], now: datetime
) -> list[Billed]:
    """For each activity of a day declared sick (or about to be: the day counts as declared without a
    certificate), what the tariff in force will bill: `sick_days` asked on the child's declared days
    as billing asks it (a certificate the service refused does not count). A few queries."""
    declared: dict[date, date | None] = {day: None}
    for declared_day, sent in db.session.execute(
        sa.select(SickDeclaration.day, Document.uploaded_at)
        .outerjoin(
            Document,
            sa.and_(Document.id == SickDeclaration.document_id, Document.state != DocumentState.REFUSED),
        )
        .where(SickDeclaration.child_id == child.id)
    ):
        declared[declared_day] = today_in_paris(sent) if sent else None
    first = _first_of_sickness(set(declared), day)
    tariffs = billing_tariffs.tariffs_for(day, day)
    quotient = billing_tariffs.family_quotient(family.guardians, day.replace(day=1))
    today = today_in_paris(now)
    found = []
    for activity in activities:
        tariff = billing_tariffs.tariff_on(tariffs.get(activity.id, []), day)
        certificate_days = tariff.sick_certificate_days if tariff else DEFAULT_CERTIFICATE_DAYS
        until = first + timedelta(days=certificate_days)
        if tariff is None or not tariff.brackets:
            found.append(Billed(activity.name, None, None, until, today))
            continue
        rule = sick_days(declared, tariff.sick_days_billed, certificate_days)[day]
        price = billing_tariffs.price_for(tariff, quotient) if BILLED[rule] else 0
        found.append(Billed(activity.name, rule, price, until, today))
    return found


def _first_of_sickness(days: set[date], day: date) -> date:
    """The first day of the sickness `day` belongs to: the declared days before it, each no more than
    SAME_SICKNESS_GAP days from the next."""
    first = day
    for earlier in sorted((each for each in days if each < day), reverse=True):
        if (first - earlier).days > SAME_SICKNESS_GAP:
            break
        first = earlier
    return first


@dataclass
class Preview:
    """What a parent sees before declaring a sick day (or of a day declared)."""

    child: Child
    day: date
    declaration: SickDeclaration | None
    covered: list[Activity]  # the activities the declaration covers (or covered: those now sick)
    others: list[tuple[Activity, str]]  # the child's other reserved activities that day, and why not
    billed: list[Billed]

    @property
    def certificate_until(self) -> date | None:
        """The last day a certificate sent now still counts (None: nothing a certificate changes)."""
        return max((each.until for each in self.billed), default=None)

    def certificate_open(self, now: datetime) -> bool:
        """Whether a certificate may still be sent for this declaration."""
        until = self.certificate_until
        return (
            self.declaration is not None
            and self.declaration.document_id is None
            and until is not None
            and today_in_paris(now) <= until
        )


def declaration_of(child: Child, day: date) -> SickDeclaration | None:
    return db.session.scalar(
        sa.select(SickDeclaration).where(SickDeclaration.child_id == child.id, SickDeclaration.day == day)
    )


def preview(family: Family, child: Child, day: date, now: datetime, zone: str) -> Preview:
    """The day's declaration if there is one (its activities now sick), else what declaring it would
    cover at `now` and bill."""
    declaration = declaration_of(child, day)
    if declaration is None:
        covered, others = bookings.sick_day(child, day, now, zone)
    else:
        covered, others = sick_activities(child, day), []
    return Preview(child, day, declaration, covered, others, billed(family, child, day, covered, now))


def sick_activities(child: Child, day: date) -> list[Activity]:
    """The child's activities of the day declared sick, by name."""
    return list(
        db.session.scalars(
            sa.select(Activity)
            .join(Booking, Booking.activity_id == Activity.id)
            .where(Booking.child_id == child.id, Booking.day == day, Booking.state == BookingState.SICK)
            .order_by(Activity.name)
        )
    )


def declare(
    family: Family,
    user: User,
    child: Child,
    day: date,
    now: datetime,
    zone: str,
    certificate: tuple[bytes, str | None] | None = None,
) -> SickDeclaration:
    """Declare the child sick that day (`bookings.declare_sick`), with its medical certificate if one
    is sent (data, file name): the file checked as every pièce justificative. The caller commits;
    a file refused (UploadError, DocumentError) leaves nothing to commit."""
    declaration = bookings.declare_sick(family.id, user, child, day, now, zone)
    if certificate is not None:
        _attach(family, user, declaration, certificate, now)
    return declaration


def attach_certificate(
    family: Family,
    user: User,
    declaration: SickDeclaration,
    certificate: tuple[bytes, str | None],
    now: datetime,
) -> Document:
    """The medical certificate of a declared day, sent afterwards: refused once one is sent, or after
    the last day it counts (the tariff's `sick_certificate_days` from the sickness's first day)."""
    if declaration.document_id is not None:
        raise CertificateSent("Le certificat médical de ce jour est déjà envoyé.")
    sick = billed(
        family, declaration.child, declaration.day, sick_activities(declaration.child, declaration.day), now
    )
    until = max((each.until for each in sick), default=None)
    if until is None or today_in_paris(now) > until:
        limit = f" (au plus tard le {french_date(until)})" if until else ""
        raise SicknessError(
            f"Trop tard pour envoyer le certificat médical de ce jour{limit} : remettez-le à la mairie."
        )
    return _attach(family, user, declaration, certificate, now)


def _rebill_sickness(child: Child, day: date, now: datetime) -> None:
    """A certificate changes what the whole sickness bills: the past months of its days already billed
    get a run (its credit note and new invoice), handed to the worker once committed
    (`runs.hand_over_queued`)."""
    declared = set(
        db.session.scalars(sa.select(SickDeclaration.day).where(SickDeclaration.child_id == child.id))
    )
    first = _first_of_sickness(declared | {day}, day)
    days = sorted(each for each in declared | {day} if each >= first)
    runs.queue_after_commit(runs.rebill({child.id}, days, None, now))


def _attach(
    family: Family,
    user: User,
    declaration: SickDeclaration,
    certificate: tuple[bytes, str | None],
    now: datetime,
) -> Document:
    data, filename = certificate
    document = documents.submit(family, user, certificate_type(), declaration.child, data, filename, now)
    db.session.flush()
    # (set once: a copy sent at the same moment finds it set, runs again and is told it was sent)
    written = db.session.execute(
        sa.update(SickDeclaration)
        .where(SickDeclaration.id == declaration.id, SickDeclaration.document_id.is_(None))
        .values(document_id=document.id)
        .execution_options(synchronize_session=False)
    )
    if written.rowcount != 1:
        raise Conflict("the certificate was sent meanwhile")
    db.session.expire(declaration, ["document_id", "document"])
    _rebill_sickness(declaration.child, declaration.day, now)
    return document


def certificate_type() -> DocumentType:
    """The town's "Certificat médical" (per child, not required): the one staff defined, else created
    the first time a family sends one."""
    kind = db.session.scalar(
        sa.select(DocumentType)
        .where(
            DocumentType.name == CERTIFICATE_TYPE,
            DocumentType.scope == DocumentScope.CHILD,
            DocumentType.active.is_(True),
        )
        .order_by(DocumentType.id)
        .limit(1)
    )
    if kind is None:
        kind = DocumentType(
            name=CERTIFICATE_TYPE,
            description="Envoyé avec une déclaration « Enfant malade » du planning.",
            scope=DocumentScope.CHILD,
            required=False,
            validity=Validity.NONE,
        )
        db.session.add(kind)
        db.session.flush()
    return kind


def of_family(family: Family) -> list[SickDeclaration]:
    """The family's declarations, the latest day first, with their child and certificate (one query)."""
    return list(
        db.session.scalars(
            sa.select(SickDeclaration)
            .where(SickDeclaration.family_id == family.id)
            .options(sa.orm.joinedload(SickDeclaration.child), sa.orm.joinedload(SickDeclaration.document))
            .order_by(SickDeclaration.day.desc(), SickDeclaration.id)
        )
    )


def for_staff(
    first: date, last: date | None, search: str = ""
) -> list[tuple[SickDeclaration, Family, list[str]]]:
    """The declarations of the days from `first` to `last` (or later), of families or children whose
    name contains `search`: each with its family and the activities it made sick (two queries)."""
    query = (
        sa.select(SickDeclaration, Family)
        .join(Family, Family.id == SickDeclaration.family_id)
        .join(Child, Child.id == SickDeclaration.child_id)
        .where(SickDeclaration.day >= first)
        .options(sa.orm.contains_eager(SickDeclaration.child), sa.orm.joinedload(SickDeclaration.document))
        .order_by(SickDeclaration.day, Family.name, Child.first_name)
    )
    if last is not None:
        query = query.where(SickDeclaration.day <= last)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            sa.or_(sa.func.lower(Family.name).like(pattern), sa.func.lower(Child.first_name).like(pattern))
        )
    rows = db.session.execute(query).unique().all()
    names: dict[tuple[int, date], list[str]] = {}
    if rows:
        for child_id, day, name in db.session.execute(
            sa.select(Booking.child_id, Booking.day, Activity.name)
            .join(Activity, Activity.id == Booking.activity_id)
            .where(
                Booking.state == BookingState.SICK,
                Booking.child_id.in_({row.SickDeclaration.child_id for row in rows}),
                Booking.day.in_({row.SickDeclaration.day for row in rows}),
            )
            .order_by(Activity.name)
        ):
            names.setdefault((child_id, day), []).append(name)
    return [
        (
            row.SickDeclaration,
            row.Family,
            names.get((row.SickDeclaration.child_id, row.SickDeclaration.day), []),
        )
        for row in rows
    ]
