"""Links in mails: built with the URL map on PUBLIC_URL, without a request (worker, scheduler)."""

from flask import has_request_context

from portail.urls import public_url


def test_public_url_joins_public_url_with_the_endpoint_path_without_a_request(app):
    assert not has_request_context()
    assert public_url("account.requests_list") == "http://localhost:5000/mon-espace/demandes"
    assert (
        public_url("account.request_history", request_id=3) == "http://localhost:5000/mon-espace/demandes/3"
    )
    assert public_url("family.documents_page", family_id=7) == "http://localhost:5000/famille/7/pieces"


def test_public_url_keeps_the_path_of_a_portal_served_under_a_prefix(app):
    app.config["PUBLIC_URL"] = "https://mairie.example.fr/portail"
    assert (
        public_url("family.documents_page", family_id=7)
        == "https://mairie.example.fr/portail/famille/7/pieces"
    )


def test_public_url_ignores_the_host_of_the_request(app):
    with app.test_request_context("/", base_url="http://evil.example"):
        assert public_url("account.requests_list") == "http://localhost:5000/mon-espace/demandes"
