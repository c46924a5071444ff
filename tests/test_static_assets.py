"""Static files: versioned URLs cached for a year; logged-in HTML never stored."""

import hashlib
import re
import shutil

from portail.extensions import db
from tests.factories import make_user

ASSET = re.compile(r'(?:href|src)="(/static/[^"?]+)\?v=([0-9a-f]{12})"')


def assets_of(page: str) -> list[tuple[str, str]]:
    return ASSET.findall(page)


def test_pages_link_their_assets_by_content_hash(client, app):
    page = client.get("/connexion").get_data(as_text=True)
    found = assets_of(page)
    assert {path for path, _ in found} == {
        "/static/css/portail.css",
        "/static/js/htmx-2.0.11.min.js",
        "/static/js/portail.js",
    }
    for path, version in found:
        content = app.open_resource(path.removeprefix("/")).read()
        assert version == hashlib.sha256(content).hexdigest()[:12], path


def test_a_logged_in_visit_downloads_the_assets_once(client, auth):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    page = client.get("/mon-espace/")
    assert page.headers["Cache-Control"] == "no-store"
    assets = assets_of(page.get_data(as_text=True))
    assert len(assets) == 3
    for path, version in assets:
        response = client.get(f"{path}?v={version}")
        assert response.status_code == 200, path
        cache_control = response.headers["Cache-Control"]
        assert "no-store" not in cache_control, path
        assert "max-age=31536000" in cache_control and "immutable" in cache_control, path


def test_an_old_or_missing_version_is_revalidated_not_kept(client):
    page = client.get("/connexion").get_data(as_text=True)
    path, _ = assets_of(page)[0]
    for url in (f"{path}?v=000000000000", path):
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-cache", url


def test_a_changed_file_gets_a_new_url(app, client, tmp_path):
    shutil.copytree(app.static_folder, tmp_path / "static")
    app.static_folder = str(tmp_path / "static")
    before = dict(assets_of(client.get("/connexion").get_data(as_text=True)))
    css = tmp_path / "static" / "css" / "portail.css"
    css.write_text(css.read_text() + "\n/* changed */\n")
    after = dict(assets_of(client.get("/connexion").get_data(as_text=True)))
    assert after["/static/css/portail.css"] != before["/static/css/portail.css"]
    assert after["/static/js/portail.js"] == before["/static/js/portail.js"]
    fresh = client.get(f"/static/css/portail.css?v={after['/static/css/portail.css']}")
    assert b"/* changed */" in fresh.data and "immutable" in fresh.headers["Cache-Control"]
