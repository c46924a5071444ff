"""Benchmark of the pages built so far: weight, SQL queries and time relative to a bare page.

Run with `make bench`. Figures are measured in one run on a temporary SQLite database loaded with
the demo data plus 500 extra families; times are given as ratios to the home page (no database).
"""

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portail import (
    create_app,  # noqa: E402
    demo,  # noqa: E402
)
from portail.extensions import db  # noqa: E402

ROUNDS = 30
ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')


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
    gzip_only = {"Accept-Encoding": "gzip"}
    results = []
    for label, client, url in pages:
        timings = []
        for _ in range(ROUNDS):
            counter["n"] = 0
            start = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - start)
            assert response.status_code == 200, (url, response.status_code)
        queries = counter["n"]
        served = client.get(url, headers=gzip_only)
        first, repeat = transferred(client, response.get_data(as_text=True), len(served.data))
        results.append((label, statistics.median(timings), queries, len(response.data), first, repeat))
    reference = results[0][1]
    print(f"{'page':28} {'time/ref':>9} {'SQL':>4} {'HTML':>8} {'1st visit KB':>13} {'next visit KB':>14}")
    for label, median, queries, size, first, repeat in results:
        print(
            f"{label:28} {median / reference:9.2f} {queries:4d} {size:8d} {first / 1024:13.1f} {repeat / 1024:14.1f}"
        )
    print(
        f"(reference: home page median {reference * 1000:.2f} ms over {ROUNDS} rounds; HTML in bytes uncompressed;"
        " a visit's KB = the page and its CSS and scripts as served with gzip; on the next visit the browser"
        " fetches again only what the server did not let it keep)"
    )


def transferred(client, html: str, page_bytes: int) -> tuple[int, int]:
    """Bytes of a first and of a repeated visit: the page plus its assets, as served with gzip."""
    first = repeat = page_bytes
    for asset in ASSET.findall(html):
        response = client.get(asset, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200, asset
        first += len(response.data)
        if not kept_by_browser(response.headers.get("Cache-Control", "")):
            repeat += len(response.data)
    return first, repeat


def kept_by_browser(cache_control: str) -> bool:
    """Whether a browser reuses the response without asking again (a max-age, no no-store/no-cache)."""
    directives = [part.strip() for part in cache_control.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return False
    return any(part.startswith("max-age=") and int(part.split("=")[1]) > 0 for part in directives)


if __name__ == "__main__":
    main()
