"""Dossier Famille: the sections of the family file and their change requests.

A parent's save never touches the validated values: it records a pending ChangeRequest with the
old and new values of one section. Staff accept (applied atomically, after a conflict check) or
refuse it with a reason; the parent may withdraw it; a newer edit of the same section replaces it.
"""

import enum
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    Authorization,
    AuthorizedContact,
    ChangeAction,
    ChangeRequest,
    ChangeStatus,
    Child,
    ChildAuthorization,
    Diet,
    Family,
    Guardian,
    User,
    utcnow,
)
from portail.services import uploads
from portail.services.audit import record
from portail.services.outbox import queue_mail
from portail.services.transactions import claim, twin
from portail.urls import public_url


@dataclass(frozen=True)
class Section:
    name: str
    owner: str  # "guardian", "child" or "contact"
    label: str
    fields: tuple[tuple[str, str], ...]
    sensitive: str | None = None  # "health" or "bank": staff reads are audited


CHILD_GENERAL = (
    ("last_name", "Nom"),
    ("first_name", "Prénom"),
    ("birth_date", "Date de naissance"),
    ("sex", "Sexe"),
    ("school", "École"),
    ("school_class", "Classe"),
)
SECTIONS = {
    section.name: section
    for section in (
        Section(
            "base",
            "guardian",
            "Informations de base",
            (
                ("civility", "Civilité"),
                ("last_name", "Nom"),
                ("first_name", "Prénom"),
                ("birth_date", "Date de naissance"),
                ("phone", "Téléphone portable"),
                ("phone_home", "Téléphone du domicile"),
                ("phone_work", "Téléphone professionnel"),
                ("email", "Adresse e-mail"),
                ("profession", "Profession"),
            ),
        ),
        Section(
            "address",
            "guardian",
            "Adresse",
            (
                ("address_line1", "Adresse"),
                ("address_line2", "Complément d'adresse"),
                ("postcode", "Code postal"),
                ("city", "Commune"),
            ),
        ),
        Section(
            "tax",
            "guardian",
            "Informations fiscales",
            (
                ("tax_regime", "Régime"),
                ("allocataire_number", "Numéro d'allocataire"),
                ("quotient", "Quotient familial"),
                ("quotient_valid_until", "Quotient valable jusqu'au"),
            ),
        ),
        Section(
            "bank",
            "guardian",
            "Données bancaires",
            (("bank_holder", "Titulaire du compte"), ("iban", "IBAN"), ("bic", "BIC")),
            sensitive="bank",
        ),
        Section("general", "child", "Informations générales", CHILD_GENERAL),
        Section("new_child", "child", "Nouvel enfant", CHILD_GENERAL),
        Section("authorizations", "child", "Autorisations", ()),
        Section(
            "health",
            "child",
            "Données sanitaires",
            (
                ("doctor_name", "Médecin traitant"),
                ("doctor_phone", "Téléphone du médecin"),
                ("allergies", "Allergies"),
                ("diet", "Régime alimentaire"),
                ("diet_other", "Précision du régime"),
                ("pai", "PAI (projet d'accueil individualisé)"),
                ("vaccinations", "Vaccinations"),
                ("health_notes", "Observations"),
            ),
            sensitive="health",
        ),
        Section("photo", "child", "Photo", (("photo", "Photo"),)),
        Section(
            "contact",
            "contact",
            "Contact habilité",
            (
                ("last_name", "Nom"),
                ("first_name", "Prénom"),
                ("relationship_label", "Lien avec l'enfant"),
                ("phone", "Téléphone"),
                ("can_pick_up", "Peut venir chercher l'enfant"),
                ("emergency_call", "À appeler en cas d'urgence"),
            ),
        ),
    )
}
GUARDIAN_SECTIONS = ("base", "address", "tax", "bank")
CHILD_SECTIONS = ("general", "authorizations", "health", "photo")
MODELS = {"guardian": Guardian, "child": Child, "contact": AuthorizedContact}


class DossierError(ValueError):
    """A change that cannot be made; the message is French."""


# --- values ------------------------------------------------------------------------------------


def dump(value):
    """A value as stored in a change request (JSON)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str):
        return value.strip() or None
    return value


def load(model, field: str, value):
    """A JSON value back into the Python type of the model's column."""
    if value is None:
        return None
    column_type = model.__table__.c[field].type
    if isinstance(column_type, sa.Date):
        return date.fromisoformat(value)
    if isinstance(column_type, sa.Enum) and column_type.enum_class is not None:
        return column_type.enum_class(value)
    return value


NO_DIET = frozenset({"aucun", "aucune", "non", "standard", "normal", "-"})


def diet_choice(text: str | None) -> tuple[Diet | None, str | None]:
    """The diet and precision of a diet written as free text (before the list): a text naming a meal
    basket, pork or a vegetarian meal is that choice, any other "Autre" with the text as precision.

    The rules of migration 0011, which turned the file's free texts into choices."""
    text = (text or "").strip()
    if not text or text.lower() in NO_DIET:
        return None, None
    folded = text.lower().replace("é", "e").replace("è", "e")
    if "panier" in folded:
        return Diet.MEAL_BASKET, None
    if "porc" in folded:
        return Diet.PORK_FREE, None
    if "vegeta" in folded or "sans viande" in folded:
        return Diet.VEGETARIAN, None
    return Diet.OTHER, text[:100]


def current(section: Section, values: dict) -> dict:
    """A change's values as the section holds them now: a health change asked before the diet became
    a list (no precision field, the diet as free text) gets the choice the migration would give it."""
    if section.name != "health" or "diet" not in values or "diet_other" in values:
        return values
    diet, precision = diet_choice(values["diet"])
    return {**values, "diet": dump(diet), "diet_other": precision}


def all_authorizations() -> list[Authorization]:
    """Every authorisation, asked at present or not, in order."""
    return list(
        db.session.scalars(sa.select(Authorization).order_by(Authorization.position, Authorization.id))
    )


def add_authorization(label: str, description: str, agent: User) -> None:
    """Ask a new authorisation of every child, after the others; audited (the same sent twice adds one)."""
    claim(agent)  # (the same form sent twice: the second copy finds the first's)
    if twin(Authorization, label=label) is None:
        position = (db.session.scalar(sa.select(sa.func.max(Authorization.position))) or 0) + 1
        db.session.add(Authorization(label=label, description=description.strip() or None, position=position))
        record(agent, "authorization.created", "authorization", None, label)


def set_authorization_active(item: Authorization, active: bool, agent: User) -> None:
    """Stop or resume asking an authorisation (answers given are kept); audited, nothing if already so."""
    if item.active is not active:
        claim(item, active=item.active)
        item.active = active
        record(agent, "authorization.toggled", "authorization", item.id, item.label)


def pending_changes(
    family_q: str, section: str, older: int | None, now: datetime, page: int, per_page: int = 30
):
    """The dossier changes waiting for an agent, oldest first, paginated: of families whose name
    contains `family_q`, of one section, asked `older` days ago or more (each filter only when given)."""
    query = sa.select(ChangeRequest).join(Family).where(ChangeRequest.status == ChangeStatus.PENDING)
    if family_q:
        query = query.where(sa.func.lower(Family.name).like(f"%{family_q.lower()}%"))
    if section in SECTIONS:
        query = query.where(ChangeRequest.section == section)
    if older:
        query = query.where(ChangeRequest.created_at <= now - timedelta(days=older))
    return db.paginate(
        query.options(
            sa.orm.contains_eager(ChangeRequest.family), sa.orm.joinedload(ChangeRequest.requested_by)
        ).order_by(ChangeRequest.created_at),
        page=page,
        per_page=per_page,
        error_out=False,
    )


def active_authorizations() -> list[Authorization]:
    """The authorisations the town currently asks about, in order."""
    return list(
        db.session.scalars(
            sa.select(Authorization)
            .where(Authorization.active.is_(True))
            .order_by(Authorization.position, Authorization.id)
        )
    )


def snapshot(section: Section, target) -> dict:
    """The validated values of a section of `target`."""
    if target is None:
        return {}
    if section.name == "authorizations":
        return {str(answer.authorization_id): answer.granted for answer in target.authorizations}
    return {field: dump(getattr(target, field)) for field, _label in section.fields}


def mask_iban(iban: str | None) -> str:
    """FR76 •••• •••• •••• 1234: the IBAN as shown everywhere."""
    if not iban:
        return "—"
    compact = iban.replace(" ", "")
    return f"{compact[:4]} •••• •••• •••• {compact[-4:]}"


def display(field: str, value) -> str:
    """A stored value as shown to people."""
    if field == "diet" and not value:
        return "Standard"
    if value is None or value == "":
        return "—"
    if field == "iban":
        return mask_iban(value)
    if isinstance(value, bool):
        return "Oui" if value else "Non"
    if field == "diet":
        return Diet(value).label
    if field in {"birth_date", "quotient_valid_until"}:
        from portail.formatting import french_date

        return french_date(date.fromisoformat(value) if isinstance(value, str) else value)
    if field == "sex":
        return {"F": "Fille", "M": "Garçon"}.get(value, value)
    if field == "civility":
        return {"Mme": "Madame", "M.": "Monsieur"}.get(value, value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def rows(
    section: Section, values: dict, authorizations: list[Authorization] | None = None
) -> list[tuple[str, str, str]]:
    """(field, label, shown value) of a section's values, for templates and mails."""
    if section.name == "authorizations":
        return [
            (str(a.id), a.label, display("", values.get(str(a.id))))
            for a in authorizations or active_authorizations()
        ]
    if section.name == "photo":
        return [("photo", "Photo", "Nouvelle photo" if values.get("photo") else "—")]
    values = current(section, values)
    return [(field, label, display(field, values.get(field))) for field, label in section.fields]


# --- pending changes ---------------------------------------------------------------------------


def key_for(
    section: Section,
    target_id: int | None,
    child_id: int | None = None,
    family_id: int | None = None,
    new_values: dict | None = None,
) -> str:
    """What a change is about; at most one pending change per key.

    A creation (a child, a contact) is named by what it creates: the same one sent twice at once
    (a double click, two tabs) has the same key, so the database keeps one; two different ones
    are two requests.
    """
    if section.name == "new_child":
        return f"family:{family_id}:child:new:{_fingerprint(new_values)}"
    if section.name == "contact":
        if target_id is None:
            return f"child:{child_id}:contact:new:{_fingerprint(new_values)}"
        return f"contact:{target_id}"
    return f"{section.owner}:{target_id}:{section.name}"


def _fingerprint(values: dict | None) -> str:
    """A short digest of proposed values (JSON, keys sorted)."""
    text = json.dumps(values or {}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pending_by_key(family: Family) -> dict[str, ChangeRequest]:
    """The family's pending changes, by key (one query)."""
    changes = db.session.scalars(
        sa.select(ChangeRequest).where(
            ChangeRequest.family_id == family.id, ChangeRequest.status == ChangeStatus.PENDING
        )
    )
    return {change.key: change for change in changes}


def request_change(
    family: Family,
    user: User,
    section_name: str,
    target,
    new_values: dict,
    action: ChangeAction = ChangeAction.UPDATE,
    child: Child | None = None,
) -> ChangeRequest:
    """Record a pending change of one section, replacing the pending one of the same section
    (the same change sent again is the one already pending)."""
    section = SECTIONS[section_name]
    old = snapshot(section, target) if action is not ChangeAction.CREATE else {}
    new = (
        {field: dump(value) for field, value in new_values.items()}
        if action is not ChangeAction.DELETE
        else {}
    )
    if action is ChangeAction.UPDATE and new == old:
        raise DossierError("Aucune modification : les valeurs saisies sont celles du dossier.")
    target_id = target.id if target is not None and action is not ChangeAction.CREATE else None
    key = key_for(
        section, target_id, child_id=child.id if child else None, family_id=family.id, new_values=new
    )
    previous = db.session.scalar(
        sa.select(ChangeRequest).where(ChangeRequest.key == key, ChangeRequest.status == ChangeStatus.PENDING)
    )
    if previous is not None and previous.action is action and previous.new_values == new:
        return previous
    if previous is not None:
        claim(previous, status=ChangeStatus.PENDING)
        _close(previous, ChangeStatus.SUPERSEDED, user)
        db.session.flush()
    change = ChangeRequest(
        family_id=family.id,
        key=key,
        section=section.name,
        action=action,
        target_id=target_id,
        child_id=child.id if child else None,
        old_values=old,
        new_values=new,
        requested_by_id=user.id,
    )
    db.session.add(change)
    db.session.flush()
    return change


def _close(
    change: ChangeRequest, status: ChangeStatus, actor: User | None, reason: str | None = None
) -> None:
    change.status = status
    change.decided_by_id = actor.id if actor else None
    change.decided_at = utcnow()
    change.reason = reason
    if status is not ChangeStatus.ACCEPTED and change.section == "photo":
        uploads.delete_after_commit(change.new_values.get("photo"))


def withdraw(change: ChangeRequest, user: User) -> None:
    """The parent takes back a pending change (taking it back twice is taking it back once)."""
    if change.status is ChangeStatus.WITHDRAWN:
        return
    if change.status is not ChangeStatus.PENDING:
        raise DossierError("Cette demande n'est plus en attente.")
    claim(change, status=ChangeStatus.PENDING)
    _close(change, ChangeStatus.WITHDRAWN, user)


def target_of(change: ChangeRequest):
    """The object a change applies to (None for a creation, or when it was deleted since)."""
    section = SECTIONS[change.section]
    if change.target_id is None:
        return None
    return db.session.get(MODELS[section.owner], change.target_id)


def conflicts(change: ChangeRequest) -> list[tuple[str, str, str, str]]:
    """Fields whose validated value changed since the request: (label, then, now, proposed)."""
    section = SECTIONS[change.section]
    if change.action is ChangeAction.CREATE:
        return []
    target = target_of(change)
    if target is None:
        return [("—", "existant", "supprimé depuis", "—")]
    now = snapshot(section, target)
    then, proposed = current(section, change.old_values), current(section, change.new_values)
    labels = {field: label for field, label, _ in rows(section, now)}
    return [
        (
            labels.get(field, field),
            display(field, then.get(field)),
            display(field, now.get(field)),
            display(field, proposed.get(field)),
        )
        for field in sorted(set(now) | set(then))
        if now.get(field) != then.get(field)
    ]


def accept(change: ChangeRequest, agent: User, force: bool = False) -> None:
    """Apply exactly the proposed values; refuses when the file changed since, unless forced."""
    if change.status is not ChangeStatus.PENDING:
        raise DossierError("Cette demande a déjà été traitée ou retirée.")
    claim(change, status=ChangeStatus.PENDING)  # (accepted once, whatever the concurrency)
    if conflicts(change) and not force:
        raise DossierError("Le dossier a changé depuis la demande : vérifiez les valeurs avant d'accepter.")
    _apply(change)
    _bank_changed(change, agent)
    _close(change, ChangeStatus.ACCEPTED, agent)
    record(
        agent,
        "dossier.accepted",
        "family",
        change.family_id,
        f"{SECTIONS[change.section].label} (demande {change.id})",
    )
    _notify(change)


def refuse(change: ChangeRequest, agent: User, reason: str) -> None:
    """Refuse with a reason; nothing in the file changes."""
    if change.status is not ChangeStatus.PENDING:
        raise DossierError("Cette demande a déjà été traitée ou retirée.")
    if not reason.strip():
        raise DossierError("Indiquez le motif du refus.")
    claim(change, status=ChangeStatus.PENDING)
    _close(change, ChangeStatus.REFUSED, agent, reason.strip())
    record(
        agent,
        "dossier.refused",
        "family",
        change.family_id,
        f"{SECTIONS[change.section].label} (demande {change.id})",
    )
    _notify(change)


def edit_directly(
    family: Family,
    agent: User,
    section_name: str,
    target,
    new_values: dict,
    action=ChangeAction.UPDATE,
    child=None,
) -> ChangeRequest | None:
    """An agent changes the file at once; kept in the history like a parent's change.

    None when the file already holds these values (e.g. the same edit sent twice: the family's
    edits take turns, and the second finds the first's values)."""
    section = SECTIONS[section_name]
    claim(family)
    if target is not None:
        db.session.refresh(target)  # (read before the turn: another copy may have changed it since)
    old = snapshot(section, target) if action is not ChangeAction.CREATE else {}
    new = {field: dump(value) for field, value in new_values.items()}
    if action is ChangeAction.UPDATE and new == old:
        return None
    change = ChangeRequest(
        family_id=family.id,
        key=f"direct:{secrets.token_hex(8)}",
        section=section.name,
        action=action,
        target_id=target.id if target is not None and action is not ChangeAction.CREATE else None,
        child_id=child.id if child else None,
        old_values=old,
        new_values=new,
        requested_by_id=agent.id,
    )
    db.session.add(change)
    _apply(change)
    _bank_changed(change, agent)
    _close(change, ChangeStatus.DIRECT, agent)
    db.session.flush()
    record(agent, "dossier.edited", "family", family.id, section.label)
    return change


def _apply(change: ChangeRequest) -> None:
    section = SECTIONS[change.section]
    values = current(section, change.new_values)
    if section.name == "new_child":
        child = Child(family_id=change.family_id, **{f: load(Child, f, v) for f, v in values.items()})
        db.session.add(child)
        db.session.flush()
        change.target_id = child.id
        return
    if section.name == "contact":
        _apply_contact(change)
        return
    target = target_of(change)
    if target is None:
        raise DossierError("L'élément concerné n'existe plus.")
    if section.name == "authorizations":
        existing = {answer.authorization_id: answer for answer in target.authorizations}
        for key, granted in values.items():
            answer = existing.get(int(key))
            if answer is None:
                target.authorizations.append(
                    ChildAuthorization(authorization_id=int(key), granted=bool(granted))
                )
            else:
                answer.granted = bool(granted)
        return
    if section.name == "photo":
        uploads.delete_after_commit(target.photo)
    model = MODELS[section.owner]
    for field, value in values.items():
        setattr(target, field, load(model, field, value))


def _bank_changed(change: ChangeRequest, agent: User) -> None:
    """A responsable's new IBAN ends the direct-debit mandate signed for the old account."""
    if change.section == "bank":
        from portail.services.billing import sepa  # (sepa shows IBANs masked as this module does)

        sepa.bank_changed(target_of(change), agent, utcnow())


def _apply_contact(change: ChangeRequest) -> None:
    values = {f: load(AuthorizedContact, f, v) for f, v in change.new_values.items()}
    if change.action is ChangeAction.CREATE:
        contact = AuthorizedContact(child_id=change.child_id, **values)
        db.session.add(contact)
        db.session.flush()
        change.target_id = contact.id
        return
    contact = target_of(change)
    if contact is None:
        raise DossierError("Ce contact n'existe plus.")
    if change.action is ChangeAction.DELETE:
        db.session.delete(contact)
    else:
        for field, value in values.items():
            setattr(contact, field, value)


def _notify(change: ChangeRequest) -> None:
    """Mail the decision to the parent who asked."""
    user = change.requested_by
    if user is None or user.is_staff:
        return
    queue_mail(
        "dossier_decision",
        user.email,
        first_name=user.first_name,
        family=change.family.name,
        section=SECTIONS[change.section].label,
        subject_of_change=describe(change),
        accepted=change.status is ChangeStatus.ACCEPTED,
        reason=change.reason,
        link=public_url("family.history", family_id=change.family_id),
    )


def describe(change: ChangeRequest) -> str:
    """Who or what the change is about, e.g. 'Léa MARTIN — Données sanitaires'."""
    section = SECTIONS[change.section]
    if section.name == "new_child":
        return f"Ajout de l'enfant {change.new_values.get('first_name')} {change.new_values.get('last_name')}"
    if section.name == "contact":
        child = db.session.get(Child, change.child_id) if change.child_id else None
        name = f"{change.new_values.get('first_name') or change.old_values.get('first_name')} {change.new_values.get('last_name') or change.old_values.get('last_name')}"
        verb = {
            ChangeAction.CREATE: "Ajout",
            ChangeAction.UPDATE: "Modification",
            ChangeAction.DELETE: "Retrait",
        }[change.action]
        return f"{verb} du contact habilité {name}" + (f" de {child.first_name}" if child else "")
    target = target_of(change)
    who = target.full_name if target is not None else "—"
    return f"{who} — {section.label}"


def history(family: Family) -> list[ChangeRequest]:
    """Every change of the family's file, newest first."""
    return list(
        db.session.scalars(
            sa.select(ChangeRequest)
            .where(ChangeRequest.family_id == family.id)
            .options(
                sa.orm.joinedload(ChangeRequest.decided_by), sa.orm.joinedload(ChangeRequest.requested_by)
            )
            .order_by(ChangeRequest.created_at.desc(), ChangeRequest.id.desc())
        )
    )


def audit_sensitive_read(agent: User, section: Section, target) -> None:
    """Record that a staff member saw health or bank data."""
    if section.sensitive:
        record(
            agent, f"{section.sensitive}.viewed", section.owner, target.id, getattr(target, "full_name", "")
        )
