"""Price before confirming (issue 19, part 2): the planning's confirmation says what the day costs the
family — the price billing will charge for it (one function, `billing.quote`) — or that no tariff is
set, and that an absence in time is free; a property-based test over brackets, quotients, tariff
periods and days checks the price said equals the invoice line's after the month is billed."""

import html
import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portail.extensions import db
from portail.models import BookingState, InvoiceLine, Tariff, ValidationMode
from portail.services import billing
from portail.services.outbox import commit
from tests.factories import (
    add_tariff,
    book,
    cell_form,
    enrol,
    make_activity,
    make_family,
    make_user,
    next_weekday,
    run_month,
    subscribe,
)
from tests.support import count_queries

pytestmark = pytest.mark.both_dbs


@pytest.fixture
def setup(app):
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    subscribe(make_user(), family)
    activity = make_activity(validation_mode=ValidationMode.AUTOMATIC, capacity=10)
    enrol(family.children[0], activity)
    db.session.commit()
    return family, family.children[0], activity


def confirmation(client, setup, day, action) -> str:
    family, child, activity = setup
    response = client.get(
        f"/famille/{family.id}/planning/confirmer",
        query_string=cell_form(child, activity, day, action),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True)).replace("\xa0", " ").replace("\u202f", " ")


def test_the_confirmation_says_the_price_for_the_familys_quotient(client, auth, setup):
    family, child, activity = setup
    family.guardians[0].quotient, family.guardians[0].quotient_valid_until = 850, date(2030, 1, 1)
    add_tariff(activity, valid_from=date(2020, 1, 1))
    commit()
    auth.login("parent@example.fr")
    text = confirmation(client, setup, next_weekday(2), "reserve")
    assert "Prix de ce jour pour votre famille : 3,30 €" in text  # the bracket 623–1000
    family.guardians[0].quotient_valid_until = next_weekday(2).replace(day=1) - timedelta(days=1)
    commit()
    expired = confirmation(client, setup, next_weekday(2), "reserve")  # lapsed: the highest bracket, said
    assert "Prix de ce jour pour votre famille : 5,10 € (tarif le plus élevé : pas de quotient" in expired
    assert 'aria-describedby="' in expired and "-cost" in expired  # the button is described by the price
    family.guardians[0].quotient = None  # no quotient: the highest bracket
    commit()
    assert "Prix de ce jour pour votre famille : 5,10 €" in confirmation(
        client, setup, next_weekday(2), "reserve"
    )


def test_without_tariff_it_says_so_and_an_absence_in_time_is_free(client, auth, setup):
    family, child, activity = setup
    auth.login("parent@example.fr")
    day = next_weekday(2)
    assert "Aucun tarif n'est encore fixé pour ce jour" in confirmation(client, setup, day, "reserve")
    book(child, activity, [day], BookingState.RESERVED)
    commit()
    assert "Une absence demandée dans les délais n'est pas facturée." in confirmation(
        client, setup, day, "absence"
    )


def test_the_price_costs_the_same_queries_whatever_the_tariffs(client, auth, setup):
    _family, _child, activity = setup
    add_tariff(activity, valid_from=date(2020, 1, 1))
    commit()
    auth.login("parent@example.fr")
    day = next_weekday(2)
    with count_queries() as one:
        confirmation(client, setup, day, "reserve")
    for start in (date(2024, 1, 1), date(2025, 1, 1), day - timedelta(days=3)):
        add_tariff(activity, valid_from=start)
    commit()
    with count_queries() as four:
        assert "Prix de ce jour" in confirmation(client, setup, day, "reserve")
    assert four["n"] == one["n"]


BRACKETS = st.lists(
    st.tuples(st.integers(1, 3000), st.integers(0, 3000)),
    min_size=1,
    max_size=4,
    unique_by=lambda row: row[0],
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(
    rows=BRACKETS,
    last_price=st.integers(0, 3000),
    quotient=st.one_of(st.none(), st.integers(0, 4000)),
    expired=st.booleans(),
    second_tariff_from=st.one_of(st.none(), st.integers(1, 27)),
    day_of_month=st.integers(1, 28),
    surcharge=st.integers(0, 500),
)
def test_the_price_said_is_the_price_billed(
    app, rows, last_price, quotient, expired, second_tariff_from, day_of_month, surcharge
):
    """For any brackets, quotient (valid, expired or none), one or two tariffs over the month and any
    day: the price the confirmation computes for the family is the invoice line's unit price, and a
    day entered after the deadline is billed the tariff's surcharge the service sees beforehand."""
    month = date(2026, 10, 1)
    day = month.replace(day=day_of_month)
    activity = make_activity(start_date=month, end_date=date(2026, 10, 31))
    family = make_family(children=(("Zoé", date(2017, 1, 1)),))
    guardian = family.guardians[0]
    guardian.quotient = quotient
    guardian.quotient_valid_until = date(2026, 9, 30) if expired else date(2027, 1, 1)
    ceilings = sorted(ceiling for ceiling, _price in rows)
    prices = [price for _ceiling, price in rows] + [last_price]
    brackets = list(zip([*ceilings, None], prices, strict=True))
    first = add_tariff(activity, prices=brackets, surcharge=surcharge, valid_from=date(2026, 1, 1))
    if second_tariff_from is not None:  # a new tariff from that day: +1 € on every bracket
        first.valid_until = month.replace(day=second_tariff_from) - timedelta(days=1)
        add_tariff(
            activity,
            prices=[(ceiling, price + 100) for ceiling, price in brackets],
            surcharge=surcharge,
            valid_from=month.replace(day=second_tariff_from),
        )
    book(family.children[0], activity, [day])
    commit()

    tariff, said, _quotient = billing.family_quotes(family.id, activity.id, [day])[day]
    run_month(month)
    (line,) = db.session.scalars(
        sa.select(InvoiceLine).where(
            InvoiceLine.child_id == family.children[0].id, InvoiceLine.label == "Jours réservés"
        )
    ).all()
    assert (line.days, line.unit_price_cents) == (1, said)
    assert tariff is not None and tariff.late_surcharge_cents == surcharge
    assert db.session.get(Tariff, tariff.id).activity_id == activity.id


def test_the_period_preview_says_the_total(client, auth, setup):
    family, child, activity = setup
    add_tariff(activity, valid_from=date(2020, 1, 1))  # no quotient: 5,10 € a day
    commit()
    auth.login("parent@example.fr")
    start = next_weekday(1)
    response = client.get(
        f"/famille/{family.id}/planning/periode",
        query_string={
            "enfant": child.id,
            "activite": activity.id,
            "type": "reservation",
            "du": start.isoformat(),
            "au": (start + timedelta(days=13)).isoformat(),
            "jours": ["1", "4"],
        },
    )
    text = html.unescape(response.get_data(as_text=True)).replace("\xa0", " ").replace("\u202f", " ")
    assert re.search(r"Léa — 4 jours de réservation demandés", text)
    assert "Coût de ces jours pour votre famille : <strong>20,40 €</strong>." in text
