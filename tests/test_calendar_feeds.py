"""Calendar feeds (Mon compte > Calendrier): a private ICS address per family or child, with the days
booked and their states, nothing of another family and no health or address data; revoked or
regenerated at once; ETag, Last-Modified and 304; a constant number of queries."""

import re
from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from portail.extensions import db
from portail.formatting import today_in_paris
from portail.models import AuditEvent, BookingState, CalendarFeed, Subscription, utcnow
from portail.services import calendar_feeds, subscriptions
from tests.factories import book, make_activity, make_family, make_user, subscribe
from tests.support import count_queries

pytestmark = pytest.mark.both_dbs

TODAY = today_in_paris(utcnow())


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def martins():
    """The MARTIN family (Léa, Tom) with health data and an address, their mother Claire subscribed
    to it; the DURAND family (Zoé) next door; the canteen: (claire, family, lea, tom, zoe, canteen)."""
    family = make_family(
        name="Famille MARTIN",
        children=(("Léa", date(2016, 3, 14)), ("Tom", date(2019, 9, 2))),
        guardians=(("Claire", "MARTIN"),),
    )
    lea, tom = family.children
    lea.allergies = "Arachide sévère"
    lea.health_notes = "Asthme : ventoline dans le cartable"
    lea.doctor_phone = "0147000000"
    guardian = family.guardians[0]
    guardian.address_line1 = "12 rue des Lilas"
    guardian.city = "Villeneuve"
    guardian.phone = "0612345678"
    durands = make_family(name="Famille DURAND", children=(("Zoé", date(2017, 1, 5)),))
    claire = make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN")
    subscribe(claire, family)
    canteen = make_activity(name="Restauration scolaire", site="École des Lilas")
    db.session.flush()
    return claire, family, lea, tom, durands.children[0], canteen


def fetch(client, token: str, **headers):
    return client.get(f"/calendrier/{token}.ics", headers=headers)


def events(response) -> dict:
    """(summary, status) of each day of the feed, by day."""
    calendar = Calendar.from_ical(response.data)
    found = {}
    for event in calendar.walk("VEVENT"):
        found.setdefault(event.decoded("dtstart"), []).append((str(event["summary"]), str(event["status"])))
    return found


def test_the_feed_has_the_familys_days_and_states_and_nothing_else(app, client):
    claire, family, lea, tom, zoe, canteen = martins()
    evening = make_activity(name="Accueil du soir")
    book(lea, canteen, [day(3), day(4)])
    book(tom, evening, [day(3)], BookingState.RESERVATION_REQUESTED)
    book(lea, evening, [day(5)], BookingState.ABSENCE_REQUESTED)
    book(lea, canteen, [day(6)], BookingState.CANCELLED)
    book(lea, canteen, [day(7)], BookingState.ABSENT)
    book(lea, canteen, [day(8)], BookingState.SICK)
    book(tom, canteen, [day(9)], BookingState.REFUSED)
    book(tom, canteen, [day(-90), day(400)])  # outside the window
    book(zoe, canteen, [day(3), day(10)])
    _feed, token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()

    response = fetch(client, token)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert events(response) == {
        day(3): [
            ("Léa — Restauration scolaire", "CONFIRMED"),
            ("Tom — Accueil du soir (Demande en attente)", "TENTATIVE"),
        ],
        day(4): [("Léa — Restauration scolaire", "CONFIRMED")],
        day(5): [("Léa — Accueil du soir (Absence demandée)", "CONFIRMED")],
        day(6): [("Léa — Restauration scolaire (Annulé par la mairie)", "CANCELLED")],
    }
    calendar = Calendar.from_ical(response.data)
    assert str(calendar["X-WR-CALNAME"]) == "Portail Famille — Famille MARTIN"
    assert str(calendar["X-WR-TIMEZONE"]) == "Europe/Paris"
    for event in calendar.walk("VEVENT"):
        assert event["DTSTART"].params["VALUE"] == "DATE"
        assert event.decoded("dtend") == event.decoded("dtstart") + timedelta(days=1)
        assert event.get("DTSTAMP") is not None
    text = response.get_data(as_text=True)
    for secret in ("Zoé", "DURAND", "Arachide", "Asthme", "0147000000", "Lilas", "Villeneuve", "0612345678"):
        assert secret not in text, secret


def test_a_childs_feed_has_only_that_childs_days(app, client):
    claire, family, lea, tom, _zoe, canteen = martins()
    book(lea, canteen, [day(3)])
    book(tom, canteen, [day(3), day(4)])
    _feed, token = calendar_feeds.issue(claire, family, tom, utcnow())
    db.session.commit()
    response = fetch(client, token)
    assert events(response) == {
        day(3): [("Tom — Restauration scolaire", "CONFIRMED")],
        day(4): [("Tom — Restauration scolaire", "CONFIRMED")],
    }
    assert str(Calendar.from_ical(response.data)["X-WR-CALNAME"]) == "Portail Famille — Famille MARTIN (Tom)"


def test_uids_are_stable_per_child_activity_and_day(app, client):
    claire, family, lea, _tom, _zoe, canteen = martins()
    book(lea, canteen, [day(3), day(4)])
    _feed, token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()

    def uids():
        calendar = Calendar.from_ical(fetch(client, token).data)
        return {event.decoded("dtstart"): str(event["uid"]) for event in calendar.walk("VEVENT")}

    before = uids()
    assert len(set(before.values())) == 2
    assert before[day(3)] == f"{lea.id}-{canteen.id}-{day(3).isoformat()}@localhost"
    book(lea, canteen, [day(5)], BookingState.RESERVATION_REQUESTED)
    db.session.commit()
    after = uids()
    assert {key: after[key] for key in before} == before and len(after) == 3


def test_an_unknown_or_revoked_token_gives_404_and_regenerating_replaces_the_address(app, client):
    claire, family, lea, _tom, _zoe, canteen = martins()
    book(lea, canteen, [day(3)])
    feed, token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()
    assert fetch(client, token).status_code == 200
    assert fetch(client, "x" * 43).status_code == 404
    assert client.get("/calendrier/" + "x" * 65 + ".ics").status_code == 404

    new_feed, new_token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()
    assert fetch(client, token).status_code == 404, "the old address stops at once"
    assert fetch(client, new_token).status_code == 200
    assert calendar_feeds.revoke(new_feed, claire, utcnow()) is True
    assert calendar_feeds.revoke(new_feed, claire, utcnow()) is False, "twice: once"
    db.session.commit()
    assert fetch(client, new_token).status_code == 404
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["calendar_feed.created", "calendar_feed.regenerated", "calendar_feed.revoked"]
    assert db.session.scalar(sa.select(CalendarFeed.token_hash).where(CalendarFeed.id == feed.id)) != token


def test_one_feed_in_force_per_account_family_and_child_is_a_database_rule(app):
    claire, family, lea, *_ = martins()
    calendar_feeds.issue(claire, family, lea, utcnow())
    db.session.commit()
    db.session.add(CalendarFeed(user_id=claire.id, family_id=family.id, child_id=lea.id, token_hash="a" * 64))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()
    calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()
    db.session.add(CalendarFeed(user_id=claire.id, family_id=family.id, child_id=None, token_hash="b" * 64))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()


def test_ending_the_subscription_stops_the_feed(app, client):
    claire, family, lea, _tom, _zoe, canteen = martins()
    _feed, token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()
    subscriptions.end(db.session.scalar(sa.select(Subscription)))
    db.session.commit()
    assert fetch(client, token).status_code == 404
    assert db.session.scalar(sa.select(CalendarFeed.revoked_at)) is not None


def test_etag_last_modified_and_304(app, client):
    claire, family, lea, _tom, _zoe, canteen = martins()
    book(lea, canteen, [day(3)])
    _feed, token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()
    first = fetch(client, token)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag and modified and "no-cache" in first.headers["Cache-Control"]
    assert "private" in first.headers["Cache-Control"]
    assert fetch(client, token).headers["ETag"] == etag, "the same days, the same text"
    unchanged = fetch(client, token, **{"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert fetch(client, token, **{"If-Modified-Since": modified}).status_code == 304

    book(lea, canteen, [day(4)], BookingState.RESERVATION_REQUESTED)
    db.session.commit()
    changed = fetch(client, token, **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert day(4) in events(changed)


def test_the_feed_costs_the_same_queries_whatever_the_days_children_and_activities(app, client):
    claire, family, lea, tom, _zoe, canteen = martins()
    book(lea, canteen, [day(3)])
    _feed, token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()
    with count_queries() as small:
        assert fetch(client, token).status_code == 200

    others = [make_activity(name=f"Activité {n}") for n in range(3)]
    for child in (lea, tom):
        for activity in [canteen, *others]:
            book(child, activity, [day(n) for n in range(10, 40)])
    db.session.commit()
    with count_queries() as large:
        response = fetch(client, token)
    assert sum(len(found) for found in events(response).values()) == 1 + 2 * 4 * 30
    assert large["n"] == small["n"] <= 3


# --- Mon compte > Calendrier ------------------------------------------------------------------------


def address_in(response) -> str:
    """The path of the address shown on the creation page."""
    found = re.search(r">(http[^<]+\.ics)</textarea>", response.get_data(as_text=True))
    assert found, "the address is shown"
    return urlsplit(found.group(1)).path


def test_a_parent_creates_regenerates_and_deletes_an_address_from_mon_compte(app, client, auth):
    claire, family, lea, tom, _zoe, canteen = martins()
    book(tom, canteen, [day(3)])
    db.session.commit()
    auth.login("claire@example.fr")
    page = client.get("/mon-espace/compte/calendrier")
    assert page.status_code == 200 and "Famille MARTIN" in page.get_data(as_text=True)

    created = client.post(
        f"/mon-espace/compte/calendrier/{family.id}", data={f"famille{family.id}-scope": str(tom.id)}
    )
    assert created.status_code == 200
    text = created.get_data(as_text=True)
    path = address_in(created)
    assert "webcal://" in text and "Google Agenda" in text and "Outlook" in text
    anonymous = app.test_client()
    assert events(anonymous.get(path)) == {day(3): [("Tom — Restauration scolaire", "CONFIRMED")]}
    token = path.removeprefix("/calendrier/").removesuffix(".ics")
    assert token not in client.get("/mon-espace/compte/calendrier").get_data(as_text=True), "shown once"

    feed = db.session.scalar(sa.select(CalendarFeed).where(CalendarFeed.revoked_at.is_(None)))
    regenerate = f"/mon-espace/compte/calendrier/adresse/{feed.id}/regenerer"
    assert "Oui, régénérer" in client.get(regenerate).get_data(as_text=True)
    assert anonymous.get(path).status_code == 200, "asking for the confirmation changes nothing"
    new_path = address_in(client.post(regenerate, data={"confirmer": "oui"}))
    assert anonymous.get(path).status_code == 404 and anonymous.get(new_path).status_code == 200

    current = db.session.scalar(sa.select(CalendarFeed).where(CalendarFeed.revoked_at.is_(None)))
    delete = f"/mon-espace/compte/calendrier/adresse/{current.id}/supprimer"
    assert "Oui, supprimer" in client.get(delete).get_data(as_text=True)
    assert client.post(delete).status_code == 200, "without the confirmation: the page that asks for it"
    assert anonymous.get(new_path).status_code == 200
    assert client.post(delete, data={"confirmer": "oui"}).status_code == 302
    assert client.post(delete, data={"confirmer": "oui"}).status_code == 302, "a second click: the same"
    assert anonymous.get(new_path).status_code == 404


def test_the_form_says_what_to_choose(app, client, auth):
    claire, family, lea, tom, zoe, canteen = martins()
    db.session.commit()
    auth.login("claire@example.fr")
    url = f"/mon-espace/compte/calendrier/{family.id}"
    missing = client.post(url, data={})
    assert missing.status_code == 422
    assert "Choisissez les jours à afficher : toute la famille ou un enfant." in missing.get_data(
        as_text=True
    )
    assert "erreur à corriger" in missing.get_data(as_text=True)
    other_child = client.post(url, data={f"famille{family.id}-scope": str(zoe.id)})
    assert other_child.status_code == 422
    assert "Choisissez les jours à afficher parmi ceux proposés." in other_child.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(CalendarFeed.id))) == 0


def test_another_familys_or_accounts_ids_give_404(app, client, auth):
    claire, family, lea, tom, zoe, canteen = martins()
    other = make_user(email="autre@example.fr")
    subscribe(other, zoe.family)
    subscribe(other, family)
    others_feed, _token = calendar_feeds.issue(other, family, None, utcnow())
    db.session.commit()
    auth.login("claire@example.fr")
    assert (
        client.post(
            f"/mon-espace/compte/calendrier/{zoe.family_id}",
            data={f"famille{zoe.family_id}-scope": "famille"},
        ).status_code
        == 404
    )
    for action in ("regenerer", "supprimer"):
        url = f"/mon-espace/compte/calendrier/adresse/{others_feed.id}/{action}"
        assert client.get(url).status_code == 404
        assert client.post(url, data={"confirmer": "oui"}).status_code == 404
    db.session.expire_all()
    assert db.session.get(CalendarFeed, others_feed.id).revoked_at is None


def test_a_deleted_or_replaced_address_cannot_be_regenerated(app, client, auth):
    """A page kept from before (the Back button, a second click): the address is gone, nothing is made."""
    claire, family, _lea, _tom, _zoe, _canteen = martins()
    feed, _token = calendar_feeds.issue(claire, family, None, utcnow())
    db.session.commit()
    auth.login("claire@example.fr")
    url = f"/mon-espace/compte/calendrier/adresse/{feed.id}/regenerer"
    assert client.post(url, data={"confirmer": "oui"}).status_code == 200  # a new address replaces it
    count = db.session.scalar(sa.select(sa.func.count(CalendarFeed.id)))
    for method in ("get", "post"):  # the replaced address: back to the list, nothing made
        again = getattr(client, method)(url, data={"confirmer": "oui"})
        assert again.status_code == 302 and again.location.endswith("/mon-espace/compte/calendrier")
    assert db.session.scalar(sa.select(sa.func.count(CalendarFeed.id))) == count
