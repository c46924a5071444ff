"""Pointage: the day's registers, marks (idempotent, latest tap wins), children added without a
booking, the closing, and who may do what (animators, agents, parents)."""

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.formatting import PARIS
from portail.models import (
    Attendance,
    AuditEvent,
    AuthorizedContact,
    BookingState,
    Presence,
    RegisterClosing,
    Role,
    utcnow,
)
from portail.services import registers
from tests.factories import book, enrol, enrolled_child, make_activity, make_family, make_user, subscribe
from tests.support import count_queries, queries_for, tabs

pytestmark = pytest.mark.both_dbs

HTMX = {"HX-Request": "true"}


def today():
    return utcnow().astimezone(PARIS).date()


@pytest.fixture
def canteen_today(app):
    """The canteen open every day, with Léa (allergic, PAI, a grandmother to collect her) and Tom
    booked today, and Zoé enrolled but not booked."""
    activity = make_activity(weekdays="1234567", name="Restauration scolaire", site="École Jules Ferry")
    family, lea = enrolled_child(activity, "Léa", family_name="Famille MARTIN")
    lea.allergies, lea.pai, lea.school_class = "Arachides", True, "CE2"
    db.session.add(
        AuthorizedContact(
            child_id=lea.id,
            first_name="Jeanne",
            last_name="MARTIN",
            relationship_label="Grand-mère",
            phone="06 11 22 33 44",
        )
    )
    _other, tom = enrolled_child(activity, "Tom")
    _third, zoe = enrolled_child(activity, "Zoé")
    book(lea, activity, [today()])
    book(tom, activity, [today()])
    db.session.commit()
    return activity, lea, tom, zoe


def register_url(activity, day=None):
    return f"/gestion/pointage/{activity.id}/{(day or today()).isoformat()}"


def login_as(client, auth, role, email):
    make_user(email=email, role=role, first_name="Inès", last_name="ANIM")
    db.session.commit()
    auth.login(email)


def mark(client, activity, child, presence, day=None, **extra):
    return client.post(
        f"{register_url(activity, day)}/enfants/{child.id}",
        data={"presence": presence, **extra},
        headers=HTMX,
    )


def marks():
    db.session.expire_all()
    return {
        (row.child_id, row.presence, row.reason) for row in db.session.scalars(sa.select(Attendance)).all()
    }


def test_the_register_lists_the_children_expected_with_their_alerts_and_who_collects_them(
    client, auth, canteen_today
):
    activity, lea, tom, zoe = canteen_today
    login_as(client, auth, Role.ANIMATOR, "anim@example.fr")
    page = client.get(register_url(activity)).get_data(as_text=True)
    assert "Léa LÉA" in page or "Léa" in page
    assert "Allergies : Arachides" in page and "PAI" in page
    assert "Qui peut venir le chercher" in page and "06 11 22 33 44" not in page  # read when asked
    contacts = client.get(f"{register_url(activity)}/enfants/{lea.id}/contacts", headers=HTMX)
    assert "Jeanne MARTIN (Grand-mère) : " in contacts.get_data(as_text=True)
    assert 'href="tel:0611223344"' in contacts.get_data(as_text=True)
    assert "<h1>" in client.get(f"{register_url(activity)}/enfants/{lea.id}/contacts").get_data(as_text=True)
    assert client.get(f"{register_url(activity)}/enfants/{zoe.id}/contacts").status_code == 404
    assert f'id="enfant-{tom.id}"' in page and f'id="enfant-{zoe.id}"' not in page
    assert "2 attendu(s) · 0 présent(s) · 0 absent(s) · 2 non pointé(s)" in page
    # the health alerts shown are an audited read, once a day per person and register
    client.get(register_url(activity))
    assert db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "register.viewed")) == 1


def test_a_register_costs_the_same_queries_whatever_its_size(client, logged_in_agent, canteen_today):
    activity = canteen_today[0]
    client.get(register_url(activity))  # (the day's first view is audited: measured apart below)
    small = queries_for(client, register_url(activity))
    for n in range(20):
        _family, child = enrolled_child(activity, f"Enfant{n}")
        book(child, activity, [today()])
        db.session.add(
            AuthorizedContact(
                child_id=child.id,
                first_name="A",
                last_name="B",
                relationship_label="Oncle",
                phone="0600000000",
            )
        )
    db.session.commit()
    assert queries_for(client, register_url(activity)) == small


def test_a_tap_marks_at_once_and_the_same_tap_twice_is_one_mark(client, logged_in_agent, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    answer = mark(client, activity, lea, "present")
    assert answer.status_code == 200
    assert 'aria-pressed="true"' in answer.get_data(as_text=True) and "Présent" in answer.get_data(
        as_text=True
    )
    assert mark(client, activity, lea, "present").status_code == 200
    assert marks() == {(lea.id, Presence.PRESENT, None)}


def test_the_latest_tap_wins_even_when_an_older_one_arrives_later(client, logged_in_agent, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    now_ms = int(utcnow().timestamp() * 1000)
    assert mark(client, activity, lea, "unexcused", tapped=str(now_ms - 1000)).status_code == 200
    # a mark queued offline a minute ago comes through now: older, it does not undo the newer one
    assert mark(client, activity, lea, "present", tapped=str(now_ms - 60_000)).status_code == 200
    assert marks() == {(lea.id, Presence.UNEXCUSED, None)}
    assert mark(client, activity, lea, "present", tapped=str(now_ms)).status_code == 200
    assert marks() == {(lea.id, Presence.PRESENT, None)}


def test_concurrent_taps_on_one_child_keep_the_latest(app, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    now, day = utcnow(), today()
    activity_id, child_id, agent_id = activity.id, lea.id, agent.id
    taps = [
        (Presence.PRESENT, now - timedelta(seconds=30)),
        (Presence.UNEXCUSED, now - timedelta(seconds=10)),
    ]
    barrier = threading.Barrier(len(taps))
    errors = []

    def tap(presence, at):
        from portail.models import Activity, User

        with app.app_context():
            try:
                barrier.wait(timeout=10)
                registers.mark(
                    db.session.get(Activity, activity_id),
                    day,
                    child_id,
                    presence,
                    None,
                    db.session.get(User, agent_id),
                    now,
                    at,
                )
                db.session.commit()
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(repr(error))
            finally:
                db.session.remove()

    for _ in range(3):
        threads = [threading.Thread(target=tap, args=item) for item in reversed(taps)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors
    assert marks() == {(child_id, Presence.UNEXCUSED, None)}


def test_an_excused_absence_needs_its_reason(client, logged_in_agent, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    answer = mark(client, activity, lea, "excused", reason="")
    assert answer.status_code == 422 and "Choisissez le motif" in answer.get_data(as_text=True)
    assert marks() == set()
    assert mark(client, activity, lea, "excused", reason="Maladie").status_code == 200
    assert marks() == {(lea.id, Presence.EXCUSED, "Maladie")}
    answer = mark(client, activity, lea, "ailleurs")
    assert answer.status_code == 422 and "Choisissez Présent ou Absent." in answer.get_data(as_text=True)


def test_a_child_not_on_the_register_or_a_day_outside_the_activity_is_not_found(
    client, logged_in_agent, canteen_today
):
    activity, _lea, _tom, zoe = canteen_today
    assert mark(client, activity, zoe, "present").status_code == 404
    assert client.get(register_url(activity, activity.end_date + timedelta(days=1))).status_code == 404
    assert client.get(f"/gestion/pointage/{activity.id}/pas-une-date").status_code == 404
    assert marks() == set()


def test_a_day_to_come_cannot_be_marked(client, logged_in_agent, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    tomorrow = today() + timedelta(days=1)
    book(lea, activity, [tomorrow])
    db.session.commit()
    answer = mark(client, activity, lea, "present", day=tomorrow)
    assert answer.status_code == 422 and "jour à venir" in answer.get_data(as_text=True)
    assert marks() == set()


def test_a_child_there_without_a_booking_is_added_present(client, logged_in_agent, canteen_today):
    activity, _lea, _tom, zoe = canteen_today
    found = client.get(f"{register_url(activity)}/ajouter?q=zo").get_data(as_text=True)
    assert "Zoé" in found
    stranger = make_family(
        name="Famille AILLEURS", children=(("Zoé", today() - timedelta(days=3000)),)
    ).children[0]
    db.session.commit()
    assert client.post(f"{register_url(activity)}/ajouter", data={"child_id": stranger.id}).status_code == 404
    answer = client.post(f"{register_url(activity)}/ajouter", data={"child_id": zoe.id})
    assert answer.status_code == 302
    assert marks() == {(zoe.id, Presence.PRESENT, None)}
    page = client.get(register_url(activity)).get_data(as_text=True)
    assert "sans réservation" in page and f'id="enfant-{zoe.id}"' in page
    # found no more: already on the register
    assert (
        "Zoé"
        not in client.get(f"{register_url(activity)}/ajouter?q=zo")
        .get_data(as_text=True)
        .split("<h1>")[1]
        .split("Aucun")[0]
        .split("</p>", 2)[-1]
    )


def test_closing_marks_the_unmarked_absent_once_and_is_audited(app, client, logged_in_agent, canteen_today):
    activity, lea, tom, _zoe = canteen_today
    mark(client, activity, lea, "present")
    ask = client.get(f"{register_url(activity)}/cloturer").get_data(as_text=True)
    assert "1 enfant(s) non pointé(s)" in ask and "Tom" in ask
    answers = [tab.post(f"{register_url(activity)}/cloturer") for tab in tabs(app, client)]
    assert all(answer.status_code == 302 for answer in answers)
    assert marks() == {(lea.id, Presence.PRESENT, None), (tom.id, Presence.UNEXCUSED, None)}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RegisterClosing)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "register.closed")) == 1


def test_a_closed_register_is_read_only_for_animators_and_reopened_by_an_agent(client, auth, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    login_as(client, auth, Role.ANIMATOR, "anim@example.fr")
    assert client.post(f"{register_url(activity)}/cloturer").status_code == 302
    answer = mark(client, activity, lea, "present")
    assert answer.status_code == 422 and "clôturé" in answer.get_data(as_text=True)
    client.post(f"{register_url(activity)}/rouvrir")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RegisterClosing)) == 1
    auth.logout()
    login_as(client, auth, Role.AGENT, "agent2@example.fr")
    assert mark(client, activity, lea, "present").status_code == 200  # an agent still corrects it
    assert client.post(f"{register_url(activity)}/rouvrir").status_code == 302
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RegisterClosing)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "register.reopened")) == 1


def test_animators_reach_the_registers_only(client, auth, canteen_today):
    activity = canteen_today[0]
    login_as(client, auth, Role.ANIMATOR, "anim@example.fr")
    assert client.get("/gestion/pointage").status_code == 200
    assert client.get(register_url(activity)).status_code == 200
    for path in (
        "/gestion/",
        "/gestion/familles",
        "/gestion/demandes",
        "/gestion/facturation",
        "/gestion/agents",
    ):
        assert client.get(path).status_code == 403, path
    # the photo of a child who is not on a register the animator opens is not theirs to see
    assert client.get(f"{register_url(activity)}/enfants/999999/photo").status_code == 404


def test_a_parent_cannot_read_a_register(client, auth, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    family = db.session.get(type(lea.family), lea.family_id)
    parent = make_user(email="parent@example.fr")
    subscribe(parent, family)
    db.session.commit()
    auth.login("parent@example.fr")
    assert client.get(register_url(activity)).status_code == 403
    assert mark(client, activity, lea, "present").status_code == 403
    assert client.get(f"{register_url(activity)}/enfants/{lea.id}/photo").status_code == 403
    assert marks() == set()


def test_the_day_s_registers_say_who_is_expected_and_what_is_closed(client, logged_in_agent, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    mark(client, activity, lea, "present")
    page = client.get("/gestion/pointage").get_data(as_text=True)
    assert "Restauration scolaire — École Jules Ferry" in page
    assert "2 enfant(s) attendu(s) · 1 pointé(s)" in page and "Ouvert" in page


def test_sick_and_absent_children_are_listed_apart(client, logged_in_agent, canteen_today):
    activity, lea, tom, _zoe = canteen_today
    db.session.execute(sa.update(type(lea)).where(type(lea).id == lea.id).values(first_name="Léa"))
    from portail.models import Booking

    db.session.execute(sa.update(Booking).where(Booking.child_id == tom.id).values(state=BookingState.SICK))
    db.session.commit()
    page = client.get(register_url(activity)).get_data(as_text=True)
    expected, apart = page.split("Absences prévues")
    assert f'id="enfant-{lea.id}"' in expected and f'id="enfant-{tom.id}"' in apart
    assert "Enfant malade" in apart


def test_the_staff_form_creates_an_animator(client, auth, app):
    make_user(email="admin@example.fr", role=Role.ADMIN)
    db.session.commit()
    auth.login("admin@example.fr")
    answer = client.post(
        "/gestion/agents",
        data={
            "last_name": "ANIM",
            "first_name": "Inès",
            "email": "ines@example.fr",
            "role": "animator",
            "civility": "",
        },
    )
    assert answer.status_code in (200, 302)
    from portail.models import User

    assert db.session.scalar(sa.select(User.role).where(User.email == "ines@example.fr")) is Role.ANIMATOR


def test_enrolled_children_only_are_found_to_add(app, canteen_today):
    activity, _lea, _tom, zoe = canteen_today
    other = make_activity(name="Garderie")
    _family, max_child = enrolled_child(other, "Max")
    db.session.commit()
    assert [child.id for child in registers.addable(activity, today(), "zo")] == [zoe.id]
    assert registers.addable(activity, today(), "max") == []
    with count_queries() as counter:
        registers.addable(activity, today(), "zo")
    assert counter["n"] == 1
    enrol(max_child, activity)
    assert [child.id for child in registers.addable(activity, today(), "max")] == [max_child.id]


def test_a_large_register_is_shown_class_by_class(client, logged_in_agent, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    lea.school_class = "CE2"
    for n in range(45):
        _family, child = enrolled_child(activity, f"Enfant{n:02d}")
        child.school_class = "CM1" if n % 2 else "CP"
        book(child, activity, [today()])
    db.session.commit()
    page = client.get(register_url(activity)).get_data(as_text=True)
    assert "CE2 (1)" in page and "CM1 (22)" in page and "CP (23)" in page and "Sans classe (1)" in page
    assert "Enfants attendus — CE2" in page and page.count('class="register-row') == 1
    assert "47 attendu(s)" in page  # the figures are the whole register's
    cp = client.get(f"{register_url(activity)}?classe=CP").get_data(as_text=True)
    assert cp.count('class="register-row') == 23
    everyone = client.get(f"{register_url(activity)}?classe=tous").get_data(as_text=True)
    assert everyone.count('class="register-row') == 47
    assert client.get(f"{register_url(activity)}?classe=inconnue").status_code == 200


def test_a_day_cancelled_by_the_town_lists_its_children_apart(client, logged_in_agent, canteen_today):
    from portail.models import Booking

    activity, lea, tom, _zoe = canteen_today
    db.session.execute(
        sa.update(Booking).where(Booking.child_id == tom.id).values(state=BookingState.CANCELLED)
    )
    db.session.commit()
    page = client.get(register_url(activity)).get_data(as_text=True)
    expected, apart = page.split("Absences prévues")
    assert f'id="enfant-{lea.id}"' in expected and f'id="enfant-{tom.id}"' in apart
    assert "Annulé par la mairie" in apart and "<strong>sans réservation</strong>" not in page


def test_without_javascript_a_refused_mark_lands_on_its_message(client, logged_in_agent, canteen_today):
    activity, lea, _tom, _zoe = canteen_today
    url = f"{register_url(activity)}/enfants/{lea.id}"
    answer = client.post(url, data={"presence": "excused", "reason": ""})
    assert answer.status_code == 302 and "#" not in answer.location  # the top of the page: its message
    assert "Choisissez le motif" in client.get(answer.location).get_data(as_text=True)
    answer = client.post(url, data={"presence": "present"})
    assert answer.location.endswith(f"#enfant-{lea.id}")  # done: back to the row


def test_a_child_added_twice_is_added_once_and_the_second_is_told(
    app, client, logged_in_agent, canteen_today
):
    activity, _lea, _tom, zoe = canteen_today
    url = f"{register_url(activity)}/ajouter"
    first, second = tabs(app, client)
    answers = [tab.post(url, data={"child_id": zoe.id}) for tab in (first, second)]
    assert [answer.status_code for answer in answers] == [302, 302]
    assert "est déjà sur le registre" in second.get(answers[1].location).get_data(as_text=True)
    assert marks() == {(zoe.id, Presence.PRESENT, None)}
    assert db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "register.added")) == 1
