"""Demo data for 'Ville de Démo' (loaded by `make run` on an empty database)."""

from datetime import date

from portail.extensions import db
from portail.models import Child, Civility, Family, Guardian, Role, Subscription, User, utcnow
from portail.services import passwords

DEMO_PASSWORD = "demo-portail-famille"

# (code abonné, family name, responsables, children); the first three are referenced in the README.
FAMILIES = [
    (
        "MRTNA52846",
        "Famille MARTIN",
        [(Civility.MADAME, "Claire", "MARTIN", "claire.martin@demo.fr"), (Civility.MONSIEUR, "Julien", "MARTIN", "julien.martin@demo.fr")],
        [("Léa", date(2016, 3, 14)), ("Tom", date(2019, 9, 2))],
    ),
    (
        "BRNRD73925",
        "Famille BERNARD",
        [(Civility.MADAME, "Sophie", "BERNARD", "sophie.bernard@demo.fr")],
        [("Inès", date(2017, 5, 21))],
    ),
    (
        "DBSFM38472",
        "Famille DUBOIS",
        [(Civility.MONSIEUR, "Karim", "DUBOIS", "karim.dubois@demo.fr")],
        [("Hugo", date(2018, 11, 30)), ("Jade", date(2015, 1, 8))],
    ),
]
MORE_SURNAMES = [
    "PETIT", "DURAND", "LEROY", "MOREAU", "SIMON", "LAURENT", "LEFEBVRE", "MICHEL", "GARCIA",
    "DAVID", "BERTRAND", "ROUX", "VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRE", "MERCIER",
    "BLANC", "GUERIN", "BOYER", "GARNIER", "CHEVALIER", "FRANCOIS",
]
FIRST_NAMES = ["Emma", "Gabriel", "Louise", "Raphaël", "Jade", "Arthur", "Alice", "Louis", "Chloé", "Jules"]
# Accounts: (e-mail, first name, last name, role, codes of the families it is subscribed to)
ACCOUNTS = [
    ("claire.martin@demo.fr", "Claire", "MARTIN", Role.PARENT, ["MRTNA52846"]),
    ("julien.martin@demo.fr", "Julien", "MARTIN", Role.PARENT, ["MRTNA52846"]),
    ("sophie.bernard@demo.fr", "Sophie", "BERNARD", Role.PARENT, ["BRNRD73925"]),
    ("agent@demo.fr", "Nadia", "AGENT", Role.AGENT, []),
    ("admin@demo.fr", "Paul", "ADMIN", Role.ADMIN, []),
]


def load() -> None:
    """Add the demo families and accounts to the session (the caller commits)."""
    families: dict[str, Family] = {}
    for code, name, guardians, children in FAMILIES:
        families[code] = _family(code, name, guardians, children)
    for index, surname in enumerate(MORE_SURNAMES):
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        kid = FIRST_NAMES[(index + 3) % len(FIRST_NAMES)]
        code = f"DEM{index:02d}".replace("0", "A").replace("1", "B") + "23456"
        _family(
            code,
            f"Famille {surname}",
            [(Civility.MADAME if index % 2 else Civility.MONSIEUR, first, surname, None)],
            [(kid, date(2014 + index % 9, 1 + index % 12, 1 + index % 27))],
        )
    password_hash = passwords.hash_password(DEMO_PASSWORD)
    for email, first, last, role, codes in ACCOUNTS:
        user = User(
            email=email,
            first_name=first,
            last_name=last,
            role=role,
            password_hash=password_hash,
            activated_at=utcnow(),
        )
        db.session.add(user)
        db.session.flush()
        for code in codes:
            db.session.add(Subscription(user_id=user.id, family_id=families[code].id))


def _family(code: str, name: str, guardians, children) -> Family:
    family = Family(subscriber_code=code, name=name)
    surname = name.removeprefix("Famille ")
    for position, (civility, first, last, email) in enumerate(guardians, start=1):
        family.guardians.append(
            Guardian(position=position, civility=civility, first_name=first, last_name=last, email=email)
        )
    for first, born in children:
        family.children.append(Child(first_name=first, last_name=surname, birth_date=born))
    db.session.add(family)
    db.session.flush()
    return family
