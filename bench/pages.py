"""Benchmark of the pages built so far: weight, SQL queries and time relative to a bare page.

Run with `make bench`. Figures are measured in one run on a temporary SQLite database loaded with
the demo data plus 500 extra families; times are given as ratios to the home page (no database).
"""

import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portail import create_app  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.services import demo  # noqa: E402

ROUNDS = 30


def main() -> None:
    directory = tempfile.mkdtemp()
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory}/bench.sqlite"})
    with app.app_context():
        db.create_all()
        demo.load()
        for index in range(500):
            demo._family(
                f"BENCH{index:05d}".replace("0", "A").replace("1", "B"),
                f"Famille BENCH{index}",
                [(None, "Parent", f"BENCH{index}", None)],
                [],
            )
        db.session.commit()
        family_id = db.session.scalar(sa.text("SELECT id FROM family WHERE name = 'Famille MARTIN'"))
        child_id = db.session.scalar(sa.text("SELECT id FROM child WHERE first_name = 'Léa'"))
        invoice_id, month = db.session.execute(
            sa.text("SELECT id, month FROM invoice WHERE family_id = :f ORDER BY id DESC"), {"f": family_id}
        ).first()
        month = str(month)[:7]
        engine = db.engine
    # Requests run outside any app context, each in its own, as in production.
    assets = [
        app.open_resource(f"static/{name}").read()
        for name in ("css/portail.css", "js/htmx-2.0.11.min.js", "js/portail.js")
    ]
    static = sum(len(asset) for asset in assets)
    static_gzip = sum(len(gzip.compress(asset)) for asset in assets)
    parent = app.test_client()
    parent.post("/connexion", data={"email": "claire.martin@demo.fr", "password": demo.DEMO_PASSWORD})
    agent = app.test_client()
    agent.post("/connexion", data={"email": "agent@demo.fr", "password": demo.DEMO_PASSWORD})
    anonymous = app.test_client()
    pages = [
        ("accueil (référence)", anonymous, "/"),
        ("connexion", anonymous, "/connexion"),
        ("inscription", anonymous, "/inscription"),
        ("mon espace", parent, "/mon-espace/"),
        ("mes abonnements", parent, "/mon-espace/abonnements"),
        ("espace famille", parent, f"/famille/{family_id}"),
        ("dossier: responsables", parent, f"/famille/{family_id}/responsables"),
        ("dossier: enfant", parent, f"/famille/{family_id}/enfants/{child_id}"),
        ("dossier: historique", parent, f"/famille/{family_id}/historique"),
        ("gestion: tableau de bord", agent, "/gestion/"),
        ("gestion: familles (527)", agent, "/gestion/familles"),
        ("gestion: recherche", agent, "/gestion/familles?q=martin"),
        ("gestion: dossier complet", agent, f"/gestion/familles/{family_id}"),
        ("gestion: modifications", agent, "/gestion/dossiers"),
        ("planning: mois", parent, f"/famille/{family_id}/planning?vue=mois"),
        ("planning: semaine", parent, f"/famille/{family_id}/planning?vue=semaine"),
        ("planning: formulaire", parent, f"/famille/{family_id}/planning/periode"),
        ("mes demandes", parent, "/mon-espace/demandes"),
        ("historique d'une demande", parent, "/mon-espace/demandes/1"),
        ("gestion: demandes", agent, "/gestion/demandes"),
        ("gestion: une demande", agent, "/gestion/demandes/1"),
        ("espace facturation", parent, "/facturation/"),
        ("une facture", parent, f"/facturation/{family_id}/factures/{invoice_id}"),
        ("gestion: facturation", agent, "/gestion/facturation"),
        ("gestion: factures du mois", agent, f"/gestion/facturation/factures?mois={month}"),
        ("gestion: une facture", agent, f"/gestion/facturation/factures/{invoice_id}"),
        ("gestion: tarifs", agent, "/gestion/facturation/tarifs"),
    ]
    counter = {"n": 0}
    sa.event.listen(engine, "before_cursor_execute", lambda *_: counter.__setitem__("n", counter["n"] + 1))
    results = []
    for label, client, url in pages:
        timings = []
        for _ in range(ROUNDS):
            counter["n"] = 0
            start = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - start)
            assert response.status_code == 200, (url, response.status_code)
        results.append(
            (
                label,
                url,
                statistics.median(timings),
                counter["n"],
                len(response.data),
                len(gzip.compress(response.data)),
            )
        )
    reference = results[0][2]
    print(f"{'page':28} {'time/ref':>9} {'SQL':>4} {'HTML':>8} {'total KB':>9} {'gzip KB':>8}")
    for label, _url, median, queries, size, zipped in results:
        print(
            f"{label:28} {median / reference:9.2f} {queries:4d} {size:8d} {(size + static) / 1024:9.1f} {(zipped + static_gzip) / 1024:8.1f}"
        )
    print(
        f"(reference: home page median {reference * 1000:.2f} ms over {ROUNDS} rounds; total = page + CSS + htmx + JS, uncompressed and gzip as served)"
    )


if __name__ == "__main__":
    main()
