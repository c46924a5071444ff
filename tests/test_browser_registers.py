"""Browser journey of a register (issue 17): at 360 px an animator opens today's register, marks three
children — one while the network refuses the request: the row says "Non envoyé" until the page sends
it again —, adds a child there without a booking, and closes the register; axe at every step."""

import re

import pytest
import sqlalchemy as sa

from portail.extensions import db
from tests.browser_support import logged_in
from tests.factories import book, enrolled_child, make_activity, make_user

pytestmark = pytest.mark.browser


def test_an_animator_marks_today_s_register_on_a_phone_even_offline_and_closes_it(browser, live_server):
    from portail.formatting import PARIS
    from portail.models import Attendance, Presence, RegisterClosing, Role, utcnow
    from portail.services.outbox import commit

    with live_server.app_context():
        today = utcnow().astimezone(PARIS).date()
        activity = make_activity(weekdays="1234567", name="Restauration scolaire", site="École Jules Ferry")
        _family, lea = enrolled_child(activity, "Léa", family_name="Famille MARTIN")
        lea.allergies, lea.pai = "Arachides", True
        _other, tom = enrolled_child(activity, "Tom")
        _third, zoe = enrolled_child(activity, "Zoé")
        _fourth, max_child = enrolled_child(activity, "Max")
        for child in (lea, tom, zoe):
            book(child, activity, [today])
        make_user(email="anim@example.fr", role=Role.ANIMATOR, first_name="Inès", last_name="ANIM")
        commit()
        activity_id, ids = activity.id, {c.first_name: c.id for c in (lea, tom, zoe, max_child)}

    base = live_server.base_url
    page, journey = logged_in(browser, base, "anim@example.fr", "pointage")
    page.get_by_role("heading", name=re.compile("Pointage du")).wait_for()  # an animator lands here
    journey.check("jour")
    page.get_by_role("link", name="Restauration scolaire — École Jules Ferry").click()
    page.get_by_text("3 attendu(s) · 0 présent(s) · 0 absent(s) · 3 non pointé(s)").wait_for()
    assert "Allergies : Arachides" in page.inner_text(f"#enfant-{ids['Léa']}")
    journey.check("registre")

    def row(name):
        return page.locator(f"#enfant-{ids[name]}")

    row("Léa").get_by_role("button", name=re.compile("^Présent")).click()
    row("Léa").locator(".register-state", has_text="Présent").wait_for()
    page.get_by_text("3 attendu(s) · 1 présent(s) · 0 absent(s) · 2 non pointé(s)").wait_for()
    # the row came back with the pressed button focused (a keyboard or screen reader user stays there)
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.getAttribute('aria-pressed') === 'true'"
    )
    row("Tom").get_by_role("button", name=re.compile("^Absent")).click()
    row("Tom").locator(".register-state", has_text="Absence injustifiée").wait_for()
    row("Tom").get_by_label("Motif").select_option("Maladie")
    row("Tom").get_by_role("button", name="Justifier").click()
    row("Tom").locator(".register-state", has_text="Absence justifiée (Maladie)").wait_for()

    # Who may collect Léa: into her row, the focus on it
    row("Léa").get_by_role("link", name=re.compile("Qui peut venir le chercher")).click()
    row("Léa").get_by_text("Qui peut venir chercher Léa").wait_for()
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.classList.contains('register-contacts')"
    )

    # The network drops for Zoé's tap: kept, shown "Non envoyé", sent again once the network is back.
    blocked = f"**/gestion/pointage/{activity_id}/*/enfants/{ids['Zoé']}"
    page.route(blocked, lambda route: route.abort("internetdisconnected"))
    row("Zoé").get_by_role("button", name=re.compile("^Présent")).click()
    row("Zoé").get_by_text("Présent : non envoyé").wait_for()
    assert "1 pointage(s) non envoyé(s)" in page.inner_text("#file-attente")
    assert (
        row("Zoé").get_by_role("button", name=re.compile("^Présent")).get_attribute("aria-pressed") == "true"
    )
    journey.check("non-envoye")
    with live_server.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attendance)) == 2
    # the closing page says a mark is waiting (and would send it first if the network were back)
    page.get_by_role("link", name="Clôturer le registre").click()
    page.get_by_text("1 pointage(s) non envoyé(s)").wait_for()
    page.go_back()
    page.unroute(blocked)
    row("Zoé").locator(".register-state", has_text="Présent").wait_for(timeout=15_000)
    page.locator("#file-attente").wait_for(state="hidden")
    assert row("Zoé").get_by_text("non envoyé").count() == 0
    page.get_by_text("3 attendu(s) · 2 présent(s) · 1 absent(s) · 0 non pointé(s)").wait_for()

    # A child there without a booking
    page.get_by_role("link", name="Ajouter un enfant présent sans réservation").click()
    page.get_by_label("Nom ou prénom de l'enfant").fill("max")
    page.get_by_role("button", name="Chercher").click()
    journey.check("ajouter")
    page.get_by_role("button", name=re.compile("Ajouter Max")).click()
    page.get_by_text(re.compile("est ajouté\\(e\\) au pointage")).wait_for()
    assert "sans réservation" in page.inner_text(f"#enfant-{ids['Max']}")

    page.get_by_role("link", name="Clôturer le registre").click()
    page.get_by_text("Tous les enfants attendus sont pointés.").wait_for()
    journey.check("cloture")
    page.get_by_role("button", name="Clôturer le registre").click()
    page.get_by_text("Registre clôturé.").wait_for()
    assert page.get_by_role("button", name=re.compile("^Présent")).first.is_disabled()
    journey.check("cloture-faite")

    with live_server.app_context():
        marks = dict(db.session.execute(sa.select(Attendance.child_id, Attendance.presence)).all())
        assert marks == {
            ids["Léa"]: Presence.PRESENT,
            ids["Tom"]: Presence.EXCUSED,
            ids["Zoé"]: Presence.PRESENT,
            ids["Max"]: Presence.PRESENT,
        }
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RegisterClosing)) == 1
