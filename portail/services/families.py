"""Family records kept by staff: creation, edition and the code abonné."""

import secrets
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from portail.extensions import db
from portail.models import Child, Civility, Family, Guardian, Subscription, User
from portail.services.audit import record
from portail.services.subscriptions import current_subscriptions
from portail.services.transactions import TWIN_WITHIN, claim, twin

# No 0/O, 1/I/L: codes are read on paper and typed on phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10  # 31^10 ≈ 8·10^14 codes, and each try also needs a child's birth date


def generate_subscriber_code() -> str:
    """A random, unused code abonné."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if db.session.scalar(sa.select(Family.id).where(Family.subscriber_code == code)) is None:
            return code


def format_code(code: str) -> str:
    """Display a code in two blocks of five, e.g. ABCDE-23456."""
    return f"{code[:5]}-{code[5:]}"


def family_file(family_id: int) -> Family | None:
    """A family with its responsables, children, their contacts and authorisations (for its page)."""
    return db.session.scalar(
        sa.select(Family)
        .where(Family.id == family_id)
        .options(
            sa.orm.selectinload(Family.guardians),
            sa.orm.selectinload(Family.children).selectinload(Child.contacts),
            sa.orm.selectinload(Family.children).selectinload(Child.authorizations),
        )
    )


def subscriptions(family: Family) -> list[Subscription]:
    """The family's active subscriptions, with their accounts."""
    return current_subscriptions(Subscription.family_id == family.id, Subscription.user)


def search(query: str, page: int, per_page: int = 20):
    """Families whose name, code, responsable or child matches `query`, paginated."""
    statement = (
        sa.select(Family)
        .options(sa.orm.selectinload(Family.guardians), sa.orm.selectinload(Family.children))
        .order_by(Family.name, Family.id)
    )
    query = (query or "").strip()
    if query:
        like = f"%{query.lower()}%"
        code = query.replace("-", "").replace(" ", "").upper()
        statement = statement.where(
            sa.or_(
                sa.func.lower(Family.name).like(like),
                Family.subscriber_code == code,
                Family.id.in_(
                    sa.select(Guardian.family_id).where(
                        sa.or_(
                            sa.func.lower(Guardian.last_name).like(like),
                            sa.func.lower(Guardian.first_name).like(like),
                            sa.func.lower(Guardian.email).like(like),
                        )
                    )
                ),
                Family.id.in_(
                    sa.select(Child.family_id).where(
                        sa.or_(
                            sa.func.lower(Child.last_name).like(like),
                            sa.func.lower(Child.first_name).like(like),
                        )
                    )
                ),
            )
        )
    return db.paginate(statement, page=page, per_page=per_page, error_out=False)


@dataclass
class PersonData:
    last_name: str
    first_name: str
    civility: Civility | None = None
    email: str | None = None
    phone: str | None = None
    birth_date: date | None = None
    id: int | None = None
    remove: bool = False


def save_family(
    family: Family | None,
    name: str,
    guardians: list[PersonData | None],
    children: list[PersonData],
    actor: User,
) -> Family:
    """Create or update a family with its responsables (positions 1, 2) and children; audited.

    The same creation sent twice (a double click, two tabs) is the first one's family."""
    claim(actor)  # (the same form sent twice: the second copy finds the first's family)
    if family is not None:
        db.session.expire(family)  # (read before the turn: its children as the first copy left them)
    elif (done := twin(Family, name=name, within=TWIN_WITHIN)) is not None:
        return done
    created = family is None
    if family is None:
        family = Family(subscriber_code=generate_subscriber_code(), name=name)
        db.session.add(family)
    family.name = name
    by_position = {guardian.position: guardian for guardian in family.guardians}
    for position, data in enumerate(guardians, start=1):
        current = by_position.get(position)
        if data is None:
            if current is not None:
                family.guardians.remove(current)
            continue
        if current is None:
            current = Guardian(position=position, last_name="", first_name="")
            family.guardians.append(current)
        current.civility = data.civility
        current.last_name = data.last_name
        current.first_name = data.first_name
        current.email = (data.email or "").lower() or None
        current.phone = data.phone or None
    existing = {child.id: child for child in family.children}
    for data in children:
        child = existing.get(data.id) if data.id else None
        if data.remove:
            if child is not None:
                family.children.remove(child)
            continue
        if child is None:  # (a child already in the file: the same form sent twice adds it once)
            child = next(
                (
                    kid
                    for kid in family.children
                    if (kid.last_name, kid.first_name, kid.birth_date)
                    == (data.last_name, data.first_name, data.birth_date)
                ),
                None,
            )
        if child is None:
            child = Child(last_name="", first_name="", birth_date=data.birth_date)
            family.children.append(child)
        child.last_name = data.last_name
        child.first_name = data.first_name
        child.birth_date = data.birth_date
    db.session.flush()
    record(actor, "family.created" if created else "family.updated", "family", family.id, name)
    return family


def regenerate_code(family: Family, actor: User) -> str:
    """Give the family a new code abonné (the old one stops working); audited."""
    family.subscriber_code = generate_subscriber_code()
    record(actor, "family.code_regenerated", "family", family.id)
    return family.subscriber_code
