"""Demo data for 'Ville de Démo' (loaded by `make run` on an empty database)."""

from datetime import date

import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    Authorization,
    AuthorizedContact,
    ChangeAction,
    Child,
    ChildAuthorization,
    Civility,
    Diet,
    Family,
    Guardian,
    Role,
    Sex,
    Subscription,
    TaxRegime,
    User,
    utcnow,
)
from portail.services import passwords

DEMO_PASSWORD = "demo-portail-famille"

# (code abonné, family name, responsables, children); the first three are referenced in the README.
FAMILIES = [
    (
        "MRTNA52846",
        "Famille MARTIN",
        [
            (Civility.MADAME, "Claire", "MARTIN", "claire.martin@demo.fr"),
            (Civility.MONSIEUR, "Julien", "MARTIN", "julien.martin@demo.fr"),
        ],
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
    "PETIT",
    "DURAND",
    "LEROY",
    "MOREAU",
    "SIMON",
    "LAURENT",
    "LEFEBVRE",
    "MICHEL",
    "GARCIA",
    "DAVID",
    "BERTRAND",
    "ROUX",
    "VINCENT",
    "FOURNIER",
    "MOREL",
    "GIRARD",
    "ANDRE",
    "MERCIER",
    "BLANC",
    "GUERIN",
    "BOYER",
    "GARNIER",
    "CHEVALIER",
    "FRANCOIS",
]
FIRST_NAMES = ["Emma", "Gabriel", "Louise", "Raphaël", "Jade", "Arthur", "Alice", "Louis", "Chloé", "Jules"]
# Accounts: (e-mail, first name, last name, role, codes of the families it is subscribed to)
ACCOUNTS = [
    ("claire.martin@demo.fr", "Claire", "MARTIN", Role.PARENT, ["MRTNA52846"]),
    ("julien.martin@demo.fr", "Julien", "MARTIN", Role.PARENT, ["MRTNA52846"]),
    ("sophie.bernard@demo.fr", "Sophie", "BERNARD", Role.PARENT, ["BRNRD73925"]),
    ("agent@demo.fr", "Nadia", "AGENT", Role.AGENT, []),
    ("animateur@demo.fr", "Lucas", "ANIMATEUR", Role.ANIMATOR, []),
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
    _complete_files(families)
    from portail.demo import activities as demo_activities

    claire = db.session.scalar(sa.select(User).where(User.email == "claire.martin@demo.fr"))
    demo_activities.load(families, claire)
    from portail.demo import documents as demo_documents

    demo_documents.load(families)
    from portail.demo import billing as demo_billing

    agent = db.session.scalar(sa.select(User).where(User.email == "agent@demo.fr"))
    demo_billing.load(families, agent)
    from portail.demo import attestation as demo_attestation
    from portail.demo import reminders as demo_reminders
    from portail.demo import sepa as demo_sepa

    demo_sepa.load(families, agent)
    demo_attestation.load(families, agent)
    demo_reminders.load()
    from portail.demo import registers as demo_registers

    martin, bernard = families["MRTNA52846"], families["BRNRD73925"]
    demo_registers.load(
        *martin.children,
        bernard.children[0],
        db.session.scalar(sa.select(User).where(User.email == "animateur@demo.fr")),
        utcnow(),
        families["DBSFM38472"].children,
    )
    from portail.demo import cancellations as demo_cancellations

    demo_cancellations.load(db.session.scalar(sa.select(User).where(User.email == "agent@demo.fr")))


AUTHORIZATIONS = [
    ("Droit à l'image", "Photos et vidéos prises pendant les activités, pour les supports de la ville."),
    ("Sortie seul", "Mon enfant peut quitter seul l'accueil à la fin des activités."),
    ("Transport", "Mon enfant peut être transporté en car ou minibus pendant les sorties."),
    ("Soins d'urgence", "L'équipe peut faire appel aux secours et faire pratiquer les soins urgents."),
]


def _complete_files(families: dict[str, Family]) -> None:
    """Full files for the MARTIN and BERNARD families, and a few pending changes to validate."""
    from portail.services import dossier

    authorizations = [
        Authorization(label=label, description=text, position=i)
        for i, (label, text) in enumerate(AUTHORIZATIONS)
    ]
    db.session.add_all(authorizations)
    db.session.flush()
    martin = families["MRTNA52846"]
    claire, julien = martin.guardians
    for guardian in (claire, julien):
        guardian.address_line1 = "12 rue des Écoles"
        guardian.postcode = "75005"
        guardian.city = "Paris"
        guardian.tax_regime = TaxRegime.CAF
        guardian.allocataire_number = "1234567"
        guardian.quotient = 850
        guardian.quotient_valid_until = date(utcnow().year + 1, 1, 31)
    claire.birth_date = date(1984, 6, 2)
    claire.phone = "06 12 34 56 78"
    claire.profession = "Infirmière"
    julien.birth_date = date(1982, 2, 17)
    julien.phone = "06 98 76 54 32"
    claire.bank_holder = "Claire MARTIN"
    claire.iban = "FR7630006000011234567890189"
    claire.bic = "AGRIFRPPXXX"
    claire.sepa_mandate_ref = "VDD-2025-000142"
    lea, tom = martin.children
    lea.sex, lea.school, lea.school_class = Sex.GIRL, "École Jules Ferry", "CE2"
    tom.sex, tom.school, tom.school_class = Sex.BOY, "École maternelle des Tilleuls", "Moyenne section"
    lea.doctor_name, lea.doctor_phone = "Dr Lefèvre", "01 43 21 00 00"
    lea.allergies = "Arachides"
    lea.pai = True
    lea.vaccinations = "À jour (DTP rappel 2022)"
    tom.diet = Diet.PORK_FREE
    families["BRNRD73925"].children[0].diet = Diet.VEGETARIAN
    for kid in (lea, tom):
        kid.authorizations = [
            ChildAuthorization(authorization_id=a.id, granted=a.position != 1) for a in authorizations
        ]
        kid.contacts.append(
            AuthorizedContact(
                last_name="DURAND",
                first_name="Monique",
                relationship_label="Grand-mère",
                phone="06 11 22 33 44",
            )
        )
    db.session.flush()
    claire_account = db.session.scalar(sa.select(User).where(User.email == "claire.martin@demo.fr"))
    dossier.request_change(
        martin,
        claire_account,
        "address",
        claire,
        {"address_line1": "8 avenue du Parc", "address_line2": None, "postcode": "75014", "city": "Paris"},
    )
    dossier.request_change(
        martin,
        claire_account,
        "health",
        tom,
        {**{f: getattr(tom, f) for f, _l in dossier.SECTIONS["health"].fields}, "allergies": "Lactose"},
    )
    dossier.request_change(
        martin,
        claire_account,
        "contact",
        None,
        {
            "last_name": "PETIT",
            "first_name": "Sarah",
            "relationship_label": "Voisine",
            "phone": "07 55 44 33 22",
            "can_pick_up": True,
            "emergency_call": False,
        },
        action=ChangeAction.CREATE,
        child=lea,
    )


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
