"""Effectifs: the children expected per day, activity and site with the kitchen's figures; the page,
its PDF and CSV (staff only, named lists audited), a constant number of queries, and the kitchen's
daily mail sent once, not before its time."""

import io
import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from portail.extensions import db
from portail.formatting import PARIS, today_in_paris
from portail.models import (
    AuditEvent,
    BookingState,
    DailyMail,
    Diet,
    OutboxMessage,
    Role,
    utcnow,
)
from portail.services import headcounts
from portail.services.headcounts import Counts
from portail.services.outbox import render
from tests.factories import book, make_activity, make_family, make_user, subscribe
from tests.support import count_queries, queries_for

pytestmark = pytest.mark.both_dbs

THURSDAY = date(2027, 3, 4)
FRIDAY = THURSDAY + timedelta(days=1)
KITCHEN = "cuisine@ville-demo.fr"


def child(name: str, diet=None, other=None, allergies=None, pai=False, family_name=None):
    """A child of a new family, with its diet and health data."""
    family = make_family(name=family_name or f"Famille {name.upper()}", children=((name, date(2016, 1, 1)),))
    kid = family.children[0]
    kid.diet, kid.diet_other, kid.allergies, kid.pai = diet, other, allergies, pai
    db.session.flush()
    return kid


def town(day: date):
    """The canteen of the Jules Ferry school and the evening club of the Pasteur school, on `day`:
    the canteen's children in every state and with every diet. (canteen, club)"""
    canteen = make_activity(name="Restauration scolaire", site="École Jules Ferry")
    club = make_activity(name="Accueil du soir", site="École Pasteur")
    reserved = [
        child("Léa", Diet.PORK_FREE),
        child("Hugo", Diet.VEGETARIAN),
        child("Emma", Diet.MEAL_BASKET, pai=True),
        child("Noé", Diet.OTHER, "sans gluten"),
        child("Jade", allergies="Arachides"),
        child("Paul"),
    ]
    for kid in reserved:
        book(kid, canteen, [day])
    book(child("Tom", Diet.PORK_FREE), canteen, [day], BookingState.ABSENCE_REQUESTED)
    book(child("Zoé", Diet.PORK_FREE, allergies="Kiwi"), canteen, [day], BookingState.RESERVATION_REQUESTED)
    for state in (BookingState.ABSENT, BookingState.SICK, BookingState.CANCELLED, BookingState.REFUSED):
        book(child(f"Non{state.name.title()}", Diet.VEGETARIAN, allergies="Œuf"), canteen, [day], state)
    book(reserved[0], canteen, [day + timedelta(days=1)])
    book(reserved[3], club, [day])
    db.session.commit()
    return canteen, club


def test_expected_children_are_the_reserved_days_with_each_diet(app):
    town(THURSDAY)
    counts = headcounts.period(THURSDAY, THURSDAY)
    [day] = counts.days
    canteen, club = sorted(day.lines, key=lambda line: line.activity, reverse=True)
    assert (canteen.activity, canteen.site) == ("Restauration scolaire", "École Jules Ferry")
    # 6 reserved + Tom (an absence asked, not decided: still expected); Zoé only pending.
    assert canteen.counts == Counts(
        expected=7, pending=1, pork_free=2, vegetarian=1, meal_basket=1, other=1, allergies=2
    )
    assert [note.text() for note in canteen.notes] == [
        "Emma EMMA — Panier repas fourni (PAI) — PAI",
        "Jade JADE — allergies : Arachides",
        "Noé NOÉ — Autre : sans gluten",
    ]
    assert club.counts == Counts(expected=1, other=1) and club.site == "École Pasteur"
    assert day.total.expected == 8


def test_a_week_has_every_day_with_totals_per_day_and_per_activity(app):
    town(THURSDAY)
    counts = headcounts.period(THURSDAY, THURSDAY + timedelta(days=6))
    assert [day.day for day in counts.days] == [THURSDAY + timedelta(days=n) for n in range(7)]
    assert [day.total.expected for day in counts.days] == [8, 1, 0, 0, 0, 0, 0]
    assert [(name, site, totals.expected) for name, site, totals in counts.by_activity] == [
        ("Restauration scolaire", "École Jules Ferry", 8),
        ("Accueil du soir", "École Pasteur", 1),
    ]
    assert counts.total.expected == 9 and counts.total.pork_free == 3


def test_a_week_costs_two_queries_whatever_the_number_of_families(app):
    town(THURSDAY)
    with count_queries() as few:
        headcounts.period(THURSDAY, THURSDAY + timedelta(days=6))
    canteen = make_activity(name="Restauration maternelle", site="École des Lilas")
    for index in range(40):
        kid = child(f"E{index}", [None, Diet.OTHER, Diet.PORK_FREE][index % 3], "sans lactose", "Lait")
        book(kid, canteen, [THURSDAY + timedelta(days=n) for n in range(5)])
    db.session.commit()
    with count_queries() as many:
        counts = headcounts.period(THURSDAY, THURSDAY + timedelta(days=6))
    assert few["n"] == many["n"] == 2
    assert counts.total.expected == 9 + 200


# --- pages -------------------------------------------------------------------------------------


@pytest.fixture
def agent(client, auth):
    make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
    db.session.commit()
    auth.login("agent@example.fr")


def health_reads() -> list[tuple]:
    return db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.target_type, AuditEvent.detail).where(
            AuditEvent.action == "health.viewed"
        )
    ).all()


def test_page_shows_todays_counts_and_names_the_children_only_on_request_audited(app, client, agent):
    today = today_in_paris(utcnow())
    town(today)
    page = client.get("/gestion/effectifs").get_data(as_text=True)
    assert "Restauration scolaire" in page and "École Jules Ferry" in page
    assert '<th scope="col" class="number">Sans porc</th>' in page
    assert "<caption>Effectifs par activité et site" in page
    assert "Arachides" not in page and "sans gluten" not in page and health_reads() == []
    page = client.get("/gestion/effectifs?listes=1").get_data(as_text=True)
    assert "Jade JADE — allergies : Arachides" in page and "Noé NOÉ — Autre : sans gluten" in page
    assert [(action, target) for action, target, _detail in health_reads()] == [
        ("health.viewed", "headcount")
    ]


@pytest.mark.parametrize(
    ("query", "first", "days"),
    [("", 0, 1), ("?periode=demain", 1, 1), ("?periode=semaine", 0, 7)],
)
def test_periods_today_tomorrow_and_the_coming_week(app, client, agent, query, first, days):
    today = today_in_paris(utcnow())
    page = client.get(f"/gestion/effectifs{query}").get_data(as_text=True)
    shown = [today + timedelta(days=n) for n in range(first, first + days)]
    for day in shown:
        assert f'id="jour-{day.isoformat()}"' in page
    assert f'id="jour-{(shown[-1] + timedelta(days=1)).isoformat()}"' not in page
    assert page.count('aria-current="page"') == 2  # the main menu's Effectifs and the period


def test_a_chosen_day_and_a_wrong_one(app, client, agent):
    town(THURSDAY)
    page = client.get(f"/gestion/effectifs?jour={THURSDAY.isoformat()}").get_data(as_text=True)
    assert "Effectifs jeudi 4 mars 2027" in page and "Aucun enfant attendu" not in page
    assert client.get("/gestion/effectifs?jour=2027-02-30").status_code == 404
    assert client.get("/gestion/effectifs?periode=mois").status_code == 404


def test_csv_export_for_excel_with_the_kitchens_lists_audited(app, client, agent):
    town(THURSDAY)
    response = client.get(f"/gestion/effectifs/effectifs.csv?jour={THURSDAY.isoformat()}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="effectifs-2027-03-04.csv"'
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0].split(";")[:4] == ["Date", "Activité", "Site", "Enfants attendus"]
    canteen, club = lines[1].split(";"), lines[2].split(";")
    assert canteen[:10] == [
        "2027-03-04",
        "Restauration scolaire",
        "École Jules Ferry",
        "7",
        "1",
        "2",
        "1",
        "1",
        "1",
        "2",
    ]
    assert canteen[10] == (
        "Emma EMMA — Panier repas fourni (PAI) — PAI | Jade JADE — allergies : Arachides"
        " | Noé NOÉ — Autre : sans gluten"
    )
    assert club == [
        "2027-03-04",
        "Accueil du soir",
        "École Pasteur",
        "1",
        "0",
        "0",
        "0",
        "0",
        "1",
        "0",
        "Noé NOÉ — Autre : sans gluten",
    ]
    assert len(lines) == 3
    assert [detail for _a, _t, detail in health_reads()] == ["Effectifs jeudi 4 mars 2027 — CSV"]


def test_csv_cells_are_never_formulas(app, client, agent):
    canteen = make_activity(name="Restauration scolaire", site="@École")
    book(child("=HYPERLINK(1)", allergies="Lait"), canteen, [THURSDAY])
    db.session.commit()
    body = client.get(f"/gestion/effectifs/effectifs.csv?jour={THURSDAY.isoformat()}").get_data()
    row = body.decode("utf-8-sig").splitlines()[1].split(";")
    assert (row[2], row[-1]) == ("'@École", "'=HYPERLINK(1) =HYPERLINK(1) — allergies : Lait")


def test_pdf_export_prints_the_week_with_the_kitchens_lists(app, client, agent):
    today = today_in_paris(utcnow())
    town(today)
    response = client.get("/gestion/effectifs/effectifs.pdf?periode=semaine")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.get_data())).pages)
    assert "Restauration scolaire" in text and "Total du jour" in text
    assert "Jade JADE — allergies : Arachides" in text and "Aucun enfant attendu." in text
    assert len(health_reads()) == 1
    assert client.get("/gestion/effectifs/effectifs.xlsx").status_code == 404


URLS = ["/gestion/effectifs", "/gestion/effectifs?listes=1", "/gestion/effectifs/effectifs.pdf"]


@pytest.mark.parametrize("role", [Role.PARENT, Role.ANIMATOR])
@pytest.mark.parametrize("url", URLS)
def test_parents_and_animators_cannot_see_the_headcounts(app, client, auth, role, url):
    town(THURSDAY)
    user = make_user(email="someone@example.fr", role=role)
    if role is Role.PARENT:
        subscribe(user, make_family(name="Famille VOISIN"))
    db.session.commit()
    auth.login("someone@example.fr")
    response = client.get(url)
    assert response.status_code == 403
    assert "Arachides" not in response.get_data(as_text=True) and health_reads() == []


def test_the_week_page_costs_a_constant_number_of_queries(app, client, agent):
    today = today_in_paris(utcnow())
    town(today)
    url = "/gestion/effectifs?periode=semaine&listes=1"
    few = queries_for(client, url)
    canteen = make_activity(name="Restauration maternelle", site="École des Lilas")
    for index in range(30):
        kid = child(f"E{index}", Diet.OTHER, "sans lactose", "Lait")
        book(kid, canteen, [today + timedelta(days=n) for n in range(7)])
    db.session.commit()
    assert queries_for(client, url) == few <= 10


def test_the_menu_links_to_the_headcounts_for_agents(app, client, agent):
    page = client.get("/gestion/").get_data(as_text=True)
    assert 'href="/gestion/effectifs"' in page and ">Effectifs</a>" in page


# --- the kitchen's mail ------------------------------------------------------------------------


def paris(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, PARIS).astimezone(UTC)


def kitchen_mails() -> list[OutboxMessage]:
    return db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "kitchen_headcounts")
    ).all()


@pytest.fixture
def kitchen(app):
    app.config.update(KITCHEN_EMAIL=KITCHEN, KITCHEN_MAIL_AT=time(9, 0))
    town(THURSDAY)


@pytest.mark.parametrize("day", [THURSDAY, date(2027, 6, 3)], ids=["winter", "summer"])
def test_kitchen_mail_leaves_at_its_time_in_paris_not_a_second_before(app, kitchen, day):
    with count_queries() as counter:
        assert headcounts.send_kitchen_mail(paris(day, time(8, 59, 59))) is False
    assert counter["n"] == 0 and kitchen_mails() == []
    assert headcounts.send_kitchen_mail(paris(day, time(9, 0, 0))) is True
    assert [(mail.recipient) for mail in kitchen_mails()] == [KITCHEN]
    assert db.session.scalars(sa.select(DailyMail.day)).all() == [day]


def test_kitchen_mail_is_sent_once_a_day_even_when_the_job_runs_again(app, kitchen):
    assert headcounts.send_kitchen_mail(paris(THURSDAY, time(9, 0, 30))) is True
    with count_queries() as counter:
        assert headcounts.send_kitchen_mail(paris(THURSDAY, time(9, 1, 30))) is False
        assert headcounts.send_kitchen_mail(paris(THURSDAY, time(18, 0))) is False
    assert counter["n"] == 2  # one look at the DailyMail row per run
    assert len(kitchen_mails()) == 1
    assert headcounts.send_kitchen_mail(paris(FRIDAY, time(9, 0))) is True  # the next day's
    assert len(kitchen_mails()) == 2


def test_kitchen_mail_missed_at_its_time_leaves_at_the_next_run_that_day(app, kitchen):
    assert headcounts.send_kitchen_mail(paris(THURSDAY, time(14, 12))) is True


def test_no_kitchen_mail_without_an_address(app, kitchen):
    app.config["KITCHEN_EMAIL"] = ""
    assert headcounts.send_kitchen_mail(paris(THURSDAY, time(10, 0))) is False
    assert kitchen_mails() == [] and db.session.scalars(sa.select(DailyMail)).all() == []


def test_two_schedulers_at_the_same_moment_send_one_kitchen_mail(app, kitchen):
    """Both runs read "not sent" and reach the insert together; one wins, the other sends nothing."""
    at_insert = threading.Barrier(2)
    held = threading.local()
    results: list = []

    def hold(_connection, _cursor, statement, *_args):
        if getattr(held, "armed", False) and statement.lstrip().upper().startswith("INSERT INTO DAILY_MAIL"):
            held.armed = False
            at_insert.wait(timeout=10)

    def run() -> None:
        with app.app_context():
            held.armed = True
            try:
                results.append(headcounts.send_kitchen_mail(paris(THURSDAY, time(9, 0, 5))))
            except Exception as error:  # noqa: BLE001  (reported by the assertion below)
                results.append(error)
            finally:
                db.session.remove()

    sa.event.listen(db.engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", hold)
    assert sorted(results, key=str) == [False, True]
    assert len(kitchen_mails()) == 1


def test_kitchen_mail_gives_today_and_tomorrow_with_the_children_to_know(app, kitchen):
    headcounts.send_kitchen_mail(paris(THURSDAY, time(9, 0)))
    [message] = kitchen_mails()
    with app.test_request_context():
        mail = render(message)
    assert mail.subject == "Ville de Démo — Effectifs pour la cuisine"
    body = mail.body
    assert "Aujourd'hui, jeudi 4 mars 2027\n" in body and "Demain, vendredi 5 mars 2027\n" in body
    assert (
        "- Restauration scolaire — École Jules Ferry : Enfants attendus 7 ; En attente 1 ; Sans porc 2 ; "
        "Végétarien (sans viande) 1 ; Panier repas fourni (PAI) 1 ; Autre régime 1 ; Allergies ou PAI 2\n"
        "  * Emma EMMA — Panier repas fourni (PAI) — PAI\n"
        "  * Jade JADE — allergies : Arachides\n"
        "  * Noé NOÉ — Autre : sans gluten\n"
        "- Accueil du soir — École Pasteur : Enfants attendus 1 ;"
    ) in body
    assert "Total du jour : Enfants attendus 8 ;" in body
    assert body.split("Demain")[1].count("- Restauration scolaire") == 1
    assert "Jade JADE — allergies : Arachides" in mail.html and "<caption" in mail.html
    assert [detail for _a, _t, detail in health_reads()] == [
        "Effectifs du jeudi 4 mars au vendredi 5 mars 2027 — e-mail à la cuisine"
    ]


def test_the_scheduler_runs_the_kitchen_mail_job_every_minute(app, kitchen):
    import worker
    from portail import jobs

    assert ("portail.jobs.kitchen_headcounts_mail", 60) in worker.RECURRING
    app.config["KITCHEN_MAIL_AT"] = time(0, 0)  # (due whatever the time the test runs)
    assert jobs.kitchen_headcounts_mail() is True
    assert jobs.kitchen_headcounts_mail() is False
    assert len(kitchen_mails()) == 1


def test_a_wrong_kitchen_mail_time_stops_the_start_with_its_name(monkeypatch):
    from config import clock

    monkeypatch.setenv("PORTAIL_KITCHEN_MAIL_AT", "9h")
    with pytest.raises(RuntimeError, match="PORTAIL_KITCHEN_MAIL_AT doit être une heure HH:MM"):
        clock("PORTAIL_KITCHEN_MAIL_AT", "09:00")
    monkeypatch.setenv("PORTAIL_KITCHEN_MAIL_AT", "07:30")
    assert clock("PORTAIL_KITCHEN_MAIL_AT", "09:00") == time(7, 30)


@pytest.mark.browser
def test_an_agent_reads_the_headcounts_on_a_phone(browser, live_server):
    """At 360 px, axe clean and no horizontal scroll: today, the week, the named lists."""
    from tests.browser_support import logged_in

    with live_server.app_context():
        today = today_in_paris(utcnow())
        canteen = make_activity(name="Restauration scolaire", site="École Jules Ferry")
        lea, tom = live_server_children()
        lea.diet, lea.diet_other, lea.allergies, lea.pai = Diet.OTHER, "Sans gluten", "Arachides", True
        book(lea, canteen, [today, today + timedelta(days=1)])
        book(tom, canteen, [today], BookingState.RESERVATION_REQUESTED)
        db.session.commit()
    page, journey = logged_in(browser, live_server.base_url, "agent@example.fr", "effectifs")
    page.get_by_role("link", name="Effectifs", exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_role("table", name="Effectifs par activité et site").count() == 1
    journey.check("aujourd-hui")
    page.get_by_role("link", name="7 prochains jours").click()
    page.wait_for_load_state()
    journey.check("semaine")
    page.get_by_role("link", name="Afficher les enfants à connaître pour la cuisine").click()
    page.wait_for_load_state()
    assert page.get_by_text("Léa MARTIN — Autre : Sans gluten — allergies : Arachides — PAI").count() == 2
    journey.check("listes")


def live_server_children():
    """The MARTIN children of the live server (Léa, Tom)."""
    from portail.models import Child

    return db.session.scalars(sa.select(Child).order_by(Child.birth_date)).all()
