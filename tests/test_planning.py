"""The planning page and its htmx cells: fragments, CSRF, other families, constant queries."""

import html
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from portail.bookings import rules as booking_rules
from portail.extensions import db
from portail.formatting import PARIS, french_day, french_instant
from portail.models import (
    Booking,
    BookingState,
    Request,
    User,
    ValidationMode,
    utcnow,
)
from portail.services import planning
from tests.conftest import make_app, tables
from tests.factories import (
    PASSWORD,
    cell_form,
    enrol,
    make_activity,
    make_family,
    make_user,
    next_weekday,
    period_form,
    school_year_activity,
    subscribe,
)
from tests.support import count_queries, queries_for

pytestmark = pytest.mark.both_dbs


@pytest.fixture
def setup(app):
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    parent = make_user()
    subscribe(parent, family)
    activity = make_activity(validation_mode=ValidationMode.AUTOMATIC, capacity=10)
    child = family.children[0]
    enrol(child, activity)
    db.session.commit()
    return family, child, activity


def click(client, setup, day, action, htmx=True):
    """The parent's click on the day's cell (the POST of its confirmation), through htmx unless not `htmx`."""
    family, child, activity = setup
    return client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, action),
        headers={"HX-Request": "true"} if htmx else {},
    )


@pytest.fixture
def requested(client, auth, setup):
    """The activity decided by staff, the parent logged in and a reservation asked for a Tuesday: its day."""
    _family, _child, activity = setup
    activity.validation_mode = ValidationMode.MANUAL
    db.session.commit()
    auth.login("parent@example.fr")
    day = next_weekday(2)
    click(client, setup, day, "reserve")
    return day


def test_views_render_with_the_legend_and_states_in_text(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    for view in ("mois", "semaine", "semaine5"):
        page = client.get(
            f"/famille/{family.id}/planning", query_string={"vue": view, "date": next_weekday(2).isoformat()}
        )
        text = page.get_data(as_text=True)
        assert (
            page.status_code == 200
            and "Légende" in text
            and "Inscrit" in text
            and "Restauration scolaire" in text
        ), view


def test_htmx_confirmation_then_request_swaps_the_cell(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    day = next_weekday(2)
    confirm = client.get(
        f"/famille/{family.id}/planning/confirmer",
        query_string=cell_form(child, activity, day, "reserve"),
        headers={"HX-Request": "true"},
    )
    text = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "<html" not in text
    assert re.search(
        r"Confirmer la demande de réservation du \w+ \d+ \w+ pour Léa — Restauration scolaire", text
    )
    done = click(client, setup, day, "reserve")
    text = done.get_data(as_text=True)
    assert done.status_code == 200 and "<html" not in text and "Réservé" in text
    assert db.session.scalar(sa.select(Booking.state)) is BookingState.RESERVED


def test_the_confirmation_says_until_when_the_day_stays_open(client, auth, setup, requested):
    """An open day says until when (its deadline in Paris time), for each action of its confirmation."""
    from portail.bookings import rules
    from portail.formatting import french_instant

    family, child, activity = setup
    day = next_weekday(3)
    for action, state_day, sentence, deadline in (
        ("reserve", day, "Réservable jusqu'au", rules.booking_deadline),
        ("withdraw", requested, "Modifiable jusqu'au", rules.booking_deadline),
    ):
        confirm = client.get(
            f"/famille/{family.id}/planning/confirmer",
            query_string=cell_form(child, activity, state_day, action),
            headers={"HX-Request": "true"},
        )
        until = french_instant(deadline(activity, state_day))
        assert f"{sentence} {until}." in html.unescape(confirm.get_data(as_text=True)), action
    page = client.get(
        f"/famille/{family.id}/planning/confirmer", query_string=cell_form(child, activity, day, "reserve")
    )
    assert f"Réservable jusqu'au {french_instant(rules.booking_deadline(activity, day))}." in html.unescape(
        page.get_data(as_text=True)
    )


def test_double_click_creates_one_request(client, auth, setup):
    auth.login("parent@example.fr")
    day = next_weekday(2)
    for _ in range(2):
        click(client, setup, day, "reserve")
    assert db.session.scalar(sa.select(sa.func.count(Request.id))) == 1


def test_without_javascript_the_confirmation_is_a_page_and_the_post_redirects(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    day = next_weekday(2)
    page = client.get(
        f"/famille/{family.id}/planning/confirmer", query_string=cell_form(child, activity, day, "reserve")
    )
    assert "<html" in page.get_data(as_text=True)
    response = click(client, setup, day, "reserve", htmx=False)
    assert response.status_code == 302 and "/planning" in response.location


def test_withdraw_a_pending_request_from_its_cell(client, setup, requested):
    assert db.session.scalar(sa.select(Booking.state)) is BookingState.RESERVATION_REQUESTED
    cell = click(client, setup, requested, "withdraw")
    assert "Inscrit" in cell.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0


def test_cell_requests_need_csrf(db_url):
    app = make_app(db_url, WTF_CSRF_ENABLED=True)
    with tables(app, drop=True):
        family = make_family()
        subscribe(make_user(), family)
        db.session.commit()
        client = app.test_client()
        page = client.get("/connexion").get_data(as_text=True)
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        client.post(
            "/connexion", data={"email": "parent@example.fr", "password": PASSWORD, "csrf_token": token}
        )
        response = client.post(
            f"/famille/{family.id}/planning/cellule", data={"enfant": "1"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 400


def test_another_familys_child_gives_404(client, auth, setup):
    family, child, activity = setup
    other = make_family(name="Famille AUTRE", children=(("Zoé", date(2015, 1, 1)),))
    enrol(other.children[0], activity)
    db.session.commit()
    auth.login("parent@example.fr")
    day = next_weekday(2)
    foreign = cell_form(other.children[0], activity, day, "reserve")
    for method, url in (("GET", "confirmer"), ("GET", "cellule"), ("POST", "cellule")):
        kwargs = {"query_string": foreign} if method == "GET" else {"data": foreign}
        response = client.open(
            f"/famille/{family.id}/planning/{url}", method=method, headers={"HX-Request": "true"}, **kwargs
        )
        assert response.status_code == 404, url
    # (an action that is none, on another family's cell or through another family's page: 404 first)
    bogus = cell_form(other.children[0], activity, day, "tout-casser")
    assert client.post(f"/famille/{family.id}/planning/cellule", data=bogus).status_code == 404
    assert client.post(f"/famille/{other.id}/planning/cellule", data=bogus).status_code == 404
    assert client.get(f"/famille/{other.id}/planning").status_code == 404
    # ids past the databases' integers, days whose periods would leave the calendar: 404, never a 500
    huge = cell_form(child, activity, day, "reserve") | {"enfant": str(2**64)}
    for method, url in (("GET", "confirmer"), ("GET", "cellule"), ("POST", "cellule")):
        kwargs = {"query_string": huge} if method == "GET" else {"data": huge}
        assert client.open(f"/famille/{family.id}/planning/{url}", method=method, **kwargs).status_code == 404
    for query in ("jour=9999-12-31", "vue=mois&date=9999-12-01", "vue=semaine&date=0001-01-01"):
        assert client.get(f"/famille/{family.id}/planning?{query}").status_code == 404, query
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0


def test_the_planning_costs_the_same_queries_for_one_child_a_week_and_four_children_five_activities_a_month(
    client, auth, setup
):
    family, child, activity = setup
    auth.login("parent@example.fr")
    small = queries_for(
        client, f"/famille/{family.id}/planning?vue=semaine&date={next_weekday(1).isoformat()}"
    )
    big = make_family(
        name="Famille NOMBREUSE", children=tuple((f"E{i}", date(2014 + i, 1, 1)) for i in range(4))
    )
    subscribe(db.session.scalar(sa.select(User)), big)
    activities = [
        school_year_activity(name=f"Activité {i}", validation_mode=ValidationMode.AUTOMATIC) for i in range(5)
    ]
    db.session.add_all(activities)
    db.session.flush()
    for kid in big.children:
        for item in activities:
            enrol(kid, item)
            db.session.add(
                Booking(
                    child_id=kid.id, activity_id=item.id, day=next_weekday(3), state=BookingState.RESERVED
                )
            )
    db.session.commit()
    month_url = f"/famille/{big.id}/planning?vue=mois&date={next_weekday(1).isoformat()}"
    month = queries_for(client, month_url)
    assert month == small  # (each remembered its view: one UPDATE each)
    assert queries_for(client, month_url) == month - 1  # the same view again: nothing to remember


def test_period_form_previews_then_creates_one_request_per_child(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    start = next_weekday(1, weeks_ahead=3)
    params = {
        "enfant": str(child.id),
        "activite": str(activity.id),
        "du": start.isoformat(),
        "au": (start + timedelta(days=13)).isoformat(),
        "jours": ["2"],
        "type": "reservation",
    }
    preview = client.get(
        f"/famille/{family.id}/planning/periode", query_string=params, headers={"HX-Request": "true"}
    )
    text = preview.get_data(as_text=True)
    assert "<html" not in text and "2 jours de réservation demandés" in text
    bad = client.post(f"/famille/{family.id}/planning/periode", data=dict(params, jours=[]))
    assert bad.status_code == 422 and "Cochez au moins un jour" in bad.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Request.id))) == 0
    done = client.post(f"/famille/{family.id}/planning/periode", data=params)
    assert done.status_code == 302
    request = db.session.scalar(sa.select(Request))
    assert [line.day.isoweekday() for line in request.lines] == [2, 2]
    listing = client.get(f"/famille/{family.id}/demandes", query_string={"enfant": child.id}).get_data(
        as_text=True
    )
    assert "2 jours" in listing and "Acceptée" in listing


def test_a_period_request_costs_the_same_queries_for_two_days_as_for_forty(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    start = next_weekday(1, weeks_ahead=3)

    def post(first: date, weeks: int, weekdays: list[str]) -> int:
        params = {
            "enfant": str(child.id),
            "activite": str(activity.id),
            "du": first.isoformat(),
            "au": (first + timedelta(weeks=weeks, days=-1)).isoformat(),
            "jours": weekdays,
            "type": "reservation",
        }
        with count_queries() as counter:
            assert client.post(f"/famille/{family.id}/planning/periode", data=params).status_code == 302
        return counter["n"]

    few = post(start, 1, ["1", "3"])
    many = post(start + timedelta(weeks=1), 8, ["1", "2", "3", "4", "5"])
    assert many <= few  # (the first request of the session also refreshes it)
    states = db.session.execute(
        sa.select(Booking.state, sa.func.count()).where(Booking.child_id == child.id).group_by(Booking.state)
    ).all()
    assert states == [(BookingState.RESERVED, 42)]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(sa.select(Request.id).subquery())) == 2


def test_a_click_reads_its_cell_in_one_query_and_writes_once_per_table(client, auth, setup):
    """The confirmation: the user, the cell, and what the day costs the family (its responsables'
    quotients, the activity's tariffs). The request: the user and the cell, then the request, the
    day's counter, the booking, the line, the history and the receipt: no read in between."""
    family, child, activity = setup
    auth.login("parent@example.fr")
    client.get(f"/famille/{family.id}/planning")  # (the first page of a session also refreshes it)
    base = f"/famille/{family.id}/planning"
    for weeks in (2, 3):
        params = cell_form(child, activity, next_weekday(2, weeks_ahead=weeks), "reserve")  # (read before)
        with count_queries() as confirm:
            page = client.get(f"{base}/confirmer", query_string=params, headers={"HX-Request": "true"})
        assert "Confirmer la demande de réservation" in page.get_data(as_text=True)
        with count_queries() as act:
            cell = client.post(f"{base}/cellule", data=params, headers={"HX-Request": "true"})
        assert "Réservé" in cell.get_data(as_text=True)
        assert (confirm["n"], act["n"]) == (4, 8)


def test_the_links_of_the_planning_cells_lead_to_their_confirmation(client, auth, setup):
    import html

    family, _child, _activity = setup
    auth.login("parent@example.fr")
    page = client.get(
        f"/famille/{family.id}/planning",
        query_string={"vue": "semaine5", "date": next_weekday(2).isoformat()},
    ).get_data(as_text=True)
    # (portail.js opens the link in place through htmx: one listener, no hx-get on each link)
    links = re.findall(r'class="cell-action" href="([^"]+)"', page)
    assert links and "hx-get" not in page.split('id="planning"')[1]
    for href in links[:3]:
        confirm = client.get(html.unescape(href), headers={"HX-Request": "true"})
        assert confirm.status_code == 200 and "Confirmer la demande de réservation" in confirm.get_data(
            as_text=True
        )


def test_a_withdrawal_after_the_deadline_is_refused_even_if_posted_directly(client, setup, requested):
    _family, _child, activity = setup
    activity.booking_deadline_days = 60  # the deadline is now in the past
    db.session.commit()
    cell = click(client, setup, requested, "withdraw")
    assert "Réservation demandée" in cell.get_data(as_text=True)
    assert db.session.scalar(sa.select(Booking.state)) is BookingState.RESERVATION_REQUESTED
    forged = click(client, setup, requested, "tout-casser", htmx=False)
    assert forged.status_code == 400


def test_the_css_defines_one_class_per_child_colour():
    """planning.CHILD_COLOURS counts the CSS's .child-N classes: a child past the last one would get no colour."""
    css = (Path(planning.__file__).resolve().parents[1] / "static" / "css" / "portail.css").read_text(
        encoding="utf-8"
    )
    defined = sorted({int(number) for number in re.findall(r"\.child-(\d+)\b", css)})
    assert defined == list(range(planning.CHILD_COLOURS))
    assert planning.CHILD_COLOURS >= 2


def test_a_family_without_enrolment_is_told_why_and_whom_to_contact(app, client, auth):
    """No empty box: the planning and the period form say there is no enrolment yet and give the
    service's contact; a family enrolled at another time of the year is told to move instead."""
    family = make_family(name="Famille DUBOIS", children=(("Noé", date(2018, 5, 2)),))
    subscribe(make_user(), family)
    db.session.commit()
    auth.login("parent@example.fr")
    contact = app.config["SERVICE_CONTACT"] = "05 55 12 34 56, enfance@commune.fr"
    for url in (f"/famille/{family.id}/planning", f"/famille/{family.id}/planning/periode"):
        page = html.unescape(client.get(url).get_data(as_text=True))
        assert "Aucune inscription pour le moment" in page and f"de la mairie ({contact}) pour" in page, url
        assert "inscrire votre enfant aux activités" in page
        assert 'class="planning ' not in page and 'name="activite"' not in page, url
    app.config["SERVICE_CONTACT"] = ""  # (production's default: the service, without a contact)
    page = html.unescape(client.get(f"/famille/{family.id}/planning").get_data(as_text=True))
    assert "contactez le service enfance de la mairie pour inscrire" in page
    start = utcnow().date() + timedelta(days=200)  # an activity of the summer: enrolled then
    enrol(
        family.children[0],
        make_activity(name="Centre de loisirs été", start_date=start, end_date=start + timedelta(days=50)),
    )
    db.session.commit()
    page = html.unescape(client.get(f"/famille/{family.id}/planning").get_data(as_text=True))
    assert "Aucune inscription pour le moment" not in page
    assert "Aucune activité sur cette période pour vos enfants" in page and 'class="planning ' in page


def test_an_empty_period_request_gets_the_error_summary_and_saves_nothing(client, auth, setup):
    """Sent empty, the form answers 422 with its error summary (each message linked to its field);
    the preview, above the button that sends, still waits quietly while the form is filled in."""
    family, _child, _activity = setup
    auth.login("parent@example.fr")
    url = f"/famille/{family.id}/planning/periode"
    page = client.get(url).get_data(as_text=True)
    assert page.index('id="apercu"') < page.index("Envoyer la demande")
    empty = client.post(url, data={})
    text = html.unescape(empty.get_data(as_text=True))
    assert empty.status_code == 422 and "4 erreurs à corriger" in text
    for anchor, message in (
        ("enfant", "Choisissez au moins un enfant."),
        ("activite", "Choisissez une activité."),
        ("du", "Indiquez les dates de début et de fin (jj/mm/aaaa)."),
        ("jours", "Cochez au moins un jour de la semaine."),
    ):
        assert f'<a href="#{anchor}">{message}</a>' in text
    preview = client.post(url, data={"apercu": "1"}, headers={"HX-Request": "true"})
    assert preview.status_code == 200 and "erreur" not in preview.get_data(as_text=True)
    # the page's summary follows the form as it is filled in (out of band, without taking the focus
    # nor alerting again); the preview itself is swapped inside a live region that stays in place
    assert 'id="apercu-contenu" aria-live="polite"' in page
    partly = client.post(
        url, data={"apercu": "1", "activite": str(_activity.id)}, headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert '<div id="erreurs" hx-swap-oob="true">' in partly and "3 erreurs à corriger" in partly
    assert 'role="alert"' not in partly and 'id="apercu-contenu"' not in partly
    whole = period_form(_child, _activity, next_weekday(1), next_weekday(1) + timedelta(days=7))
    fixed = client.post(url, data={**whole, "apercu": "1"}, headers={"HX-Request": "true"})
    fixed_text = fixed.get_data(as_text=True)
    assert '<div id="erreurs" hx-swap-oob="true"></div>' in fixed_text and "à corriger" not in fixed_text
    assert db.session.scalar(sa.select(sa.func.count(Request.id))) == 0


def test_the_switches_survive_previous_next_today_and_a_change_of_view(client, auth, setup):
    family, _child, activity = setup
    tom = make_family(children=(("Tom", date(2019, 9, 2)),)).children[0]
    tom.family_id = family.id
    enrol(tom, activity)
    db.session.commit()
    auth.login("parent@example.fr")
    lea = family.children[0]
    url = f"/famille/{family.id}/planning"
    # without a filter, the links stay short
    plain = client.get(url).get_data(as_text=True)
    assert "filtre=1" not in plain.split('class="switches"')[0]
    shown = {"vue": "semaine", "filtre": "1", "enfant": str(lea.id), "activite": str(activity.id)}
    page = html.unescape(client.get(url, query_string=shown).get_data(as_text=True))
    links = re.findall(r'href="(/famille/\d+/planning\?vue=[^"]+)"', page)
    assert len(links) == 7  # 4 views, Précédent, Aujourd'hui, Suivant
    for link in links:
        assert f"filtre=1&enfant={lea.id}&activite={activity.id}" in link, link
    # the month's days open their agenda with the same switches
    month = html.unescape(client.get(url, query_string={**shown, "vue": "mois"}).get_data(as_text=True))
    day_links = re.findall(r'class="day-link" href="([^"]+)"', month)
    assert day_links and all(
        link.startswith(f"?filtre=1&enfant={lea.id}&activite={activity.id}&jour=") for link in day_links
    )
    following = re.search(r'href="([^"]+)" rel="next"', page).group(1)
    nxt = html.unescape(client.get(following).get_data(as_text=True))
    assert re.search(rf'value="{lea.id}" checked', nxt)
    assert f'name="enfant" value="{tom.id}"' in nxt and not re.search(rf'value="{tom.id}" checked', nxt)


def _days(page: str) -> list[str]:
    return [name.strip() for name in re.findall(r'<h3 class="day-title">([^<]+)', page)]


def test_the_agenda_shows_seven_days_from_the_day_asked_and_a_day_without_anything_in_one_line(
    client, auth, setup
):
    family, child, activity = setup
    auth.login("parent@example.fr")
    friday = next_weekday(5)
    page = client.get(f"/famille/{family.id}/planning?vue=agenda&date={friday.isoformat()}").get_data(
        as_text=True
    )
    days = _days(page)
    assert days[0] == french_day(friday) and len(days) == 7  # from the day asked, not the 1st
    assert days[1] == french_day(friday + timedelta(days=1))
    # the weekend (the activity opens Monday to Friday): one line each, saying so
    weekend = page.split(f'<h3 class="day-title">{french_day(friday + timedelta(days=1))}<')[1].split(
        "</section>"
    )[0]
    assert "Rien de prévu" in weekend and "cell" not in weekend
    # one line per child × activity with the action on it
    monday = page.split(f'<h3 class="day-title">{french_day(friday + timedelta(days=3))}<')[1].split(
        "</section>"
    )[0]
    assert monday.count('class="cell ') == 1 and "Réserver" in monday and child.first_name in monday
    # an open day says until when (the activity's deadline: two working days before at 10:00)
    deadline = booking_rules.booking_deadline(activity, friday + timedelta(days=3))
    assert f"Réservable jusqu'au {french_instant(deadline)}." in html.unescape(monday)
    first, last = friday, friday + timedelta(days=6)
    assert re.search(r'<h2 class="period-title" id="periode">Du [0-9er]+ [a-zéû ]*au ', page)
    following = re.search(r'href="([^"]+)" rel="next"', page).group(1)
    assert (
        f"date={(first + timedelta(days=7)).isoformat()}" in following and last.isoformat() not in following
    )


def test_a_phone_opens_the_agenda_from_today_and_a_computer_the_month(client, auth, setup):
    family, _child, _activity = setup
    auth.login("parent@example.fr")
    url = f"/famille/{family.id}/planning"
    today = utcnow().astimezone(PARIS).date()
    client.set_cookie("ecran", "etroit")
    phone = client.get(url).get_data(as_text=True)
    assert _days(phone)[0] == french_day(today) and len(_days(phone)) == 7
    assert 'aria-current="page">Agenda<' in phone
    client.set_cookie("ecran", "large")
    computer = client.get(url).get_data(as_text=True)
    assert 'aria-current="page">Mois<' in computer
    assert (
        re.search(r'class="day-link" href="([^"]+)"', computer)
        .group(1)
        .endswith(today.replace(day=1).isoformat())
    )
    client.delete_cookie("ecran")
    assert 'aria-current="page">Mois<' in client.get(url).get_data(as_text=True)  # without JavaScript


def test_the_seven_day_week_drops_a_weekend_where_nothing_opens(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    monday = next_weekday(1)
    url = f"/famille/{family.id}/planning?vue=semaine&date={monday.isoformat()}"
    page = client.get(url).get_data(as_text=True)
    assert len(_days(page)) == 5 and 'class="planning planning-semaine5"' in page
    saturday = make_activity(name="Stage du samedi", weekdays="6")
    enrol(child, saturday)
    db.session.commit()
    page = client.get(url).get_data(as_text=True)
    assert len(_days(page)) == 7 and 'class="planning planning-semaine"' in page


def test_a_decision_on_a_cell_takes_the_focus_and_is_announced(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    day = next_weekday(2)
    url = f"/famille/{family.id}/planning/confirmer"
    query = cell_form(child, activity, day, "reserve")
    confirm = client.get(url, query_string=query, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.search(
        r'<button type="submit" class="button"( aria-describedby="[^"]+")? autofocus>Confirmer</button>',
        confirm,
    )
    assert "data-cancel" in confirm
    done = click(client, setup, day, "reserve").get_data(as_text=True)
    # automatic validation: reserved at once, the cell's next action (an absence) takes the focus
    assert re.search(r'<a autofocus class="cell-action"[^>]*>Déclarer une absence', done)
    live = re.search(r'<div hx-swap-oob="innerHTML:#annonce">([^<]+)</div>', done).group(1)
    # (decided at once: said done, not asked)
    assert live == f"Réservation enregistrée pour Léa, {french_day(day)} — {activity.name}"
    # the same click again: the cell (without an action left for it) and the reason, announced
    again = click(client, setup, day, "reserve").get_data(as_text=True)
    said = re.search(r'<div hx-swap-oob="innerHTML:#annonce">([^<]+)</div>', again).group(1)
    assert said and "Réservation demandée" not in said
    # a confirmation asked from a tab where the day is stale: the day as it is now, and it is said
    stale = client.get(url, query_string=query, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Confirmer" not in stale and "Ce jour a changé entre-temps" in stale and "#annonce" in stale
    # Annuler gives the cell back with the focus on its action
    cell_url = f"/famille/{family.id}/planning/cellule"
    query = cell_form(child, activity, day + timedelta(days=1))
    cancel = client.get(cell_url, query_string=query, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.search(r'<a autofocus class="cell-action"[^>]*>Réserver', cancel)
    assert 'tabindex="-1" autofocus' not in cancel
    # a cell without any action left (a day gone by) takes the focus itself
    gone = next_weekday(2, weeks_ahead=-1)
    query = cell_form(child, activity, gone)
    past = client.get(cell_url, query_string=query, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'tabindex="-1" autofocus>' in past and "cell-action" not in past


def test_the_planning_page_itself_focuses_nothing_and_offers_a_skip_link(client, auth, setup):
    family, _child, _activity = setup
    auth.login("parent@example.fr")
    page = client.get(f"/famille/{family.id}/planning").get_data(as_text=True)
    assert "autofocus" not in page
    assert page.index('href="#planning">Aller au planning</a>') < page.index('href="#contenu"')
    assert 'id="planning" role="region" tabindex="-1" aria-labelledby="periode"' in page
    assert 'id="annonce"' in page and 'aria-live="polite"' in page


def test_the_planning_opens_as_the_parent_left_it_on_each_kind_of_screen(client, auth, setup):
    family, child, activity = setup
    other = make_activity(name="Accueil du soir")
    enrol(child, other)
    db.session.commit()
    auth.login("parent@example.fr")
    url = f"/famille/{family.id}/planning"
    client.set_cookie("ecran", "large")
    client.get(url, query_string={"vue": "semaine5", "filtre": "1", "enfant": child.id, "activite": other.id})
    client.set_cookie("ecran", "etroit")
    client.get(url, query_string={"vue": "mois"})
    parent = db.session.scalar(sa.select(User).where(User.email == "parent@example.fr"))
    db.session.refresh(parent)
    assert parent.planning_choice == {
        "large": "semaine5",
        "etroit": "mois",
        "masques": {str(family.id): {"enfants": [], "activites": [activity.id]}},  # what is switched off
    }
    # a day opened from the month is not a view chosen: the phone keeps its month
    opened = client.get(url, query_string={"jour": next_weekday(2).isoformat()}).get_data(as_text=True)
    assert 'aria-current="page">Agenda<' in opened and _days(opened)[0] == french_day(next_weekday(2))
    # the next visit, on each screen: its view, the family's switches (its links carry them)
    phone = client.get(url).get_data(as_text=True)
    assert 'aria-current="page">Mois<' in phone
    assert f'name="activite" value="{activity.id}" >' in phone and f'value="{other.id}" checked' in phone
    client.set_cookie("ecran", "large")
    computer = client.get(url).get_data(as_text=True)
    assert 'aria-current="page">5 jours<' in computer and f"activite={other.id}" in computer
    # the way back of a confirmation without JavaScript (the day only) lands on the same view
    back = client.get(url, query_string={"date": next_weekday(3).isoformat()}).get_data(as_text=True)
    assert 'aria-current="page">5 jours<' in back
    # a child and an activity added since are shown; what was switched off stays off
    tom = make_family(children=(("Tom", date(2019, 9, 2)),)).children[0]
    tom.family_id = family.id
    third = make_activity(name="Centre de loisirs")
    for kid, item in ((tom, activity), (tom, third), (child, third)):
        enrol(kid, item)
    db.session.commit()
    later = client.get(url).get_data(as_text=True)
    assert f'value="{tom.id}" checked' in later and f'value="{third.id}" checked' in later
    assert f'name="activite" value="{activity.id}" >' in later
    # every switch on again: nothing left to remember as hidden
    everything = {"filtre": "1", "enfant": [child.id, tom.id], "activite": [activity.id, other.id, third.id]}
    client.get(url, query_string=everything)
    db.session.refresh(parent)
    assert parent.planning_choice["masques"] == {}
    # another account of the family starts afresh
    second = make_user(email="second@example.fr")
    subscribe(second, family)
    db.session.commit()
    auth.logout()
    auth.login("second@example.fr")
    assert 'aria-current="page">Mois<' in client.get(url).get_data(as_text=True)
    assert "filtre=1" not in client.get(url).get_data(as_text=True).split('class="switches"')[0]


def test_the_planning_urls_built_from_its_page_are_the_routes_urls(app):
    from flask import url_for

    from portail.family.planning_routes import planning_urls

    with app.test_request_context():
        assert planning_urls(7) == {
            "page_url": url_for("family.planning_page", family_id=7),
            "confirm_base": url_for("family.planning_confirm", family_id=7),
            "sick_base": url_for("family.planning_sick", family_id=7),
            "period_url": url_for("family.planning_period", family_id=7),
            "cell_url": url_for("family.planning_cell", family_id=7),
        }
