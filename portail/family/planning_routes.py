"""Planning (Espace Famille → Activités): views, one-click requests, the period form, the list."""

from datetime import date, timedelta
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from portail import bookings
from portail.bookings import AlreadyRequested, BookingError
from portail.bookings import facts as booking_facts
from portail.bookings.rules import (
    ABSENCE,
    CONFIRM,
    DECLINE,
    JOIN,
    RESERVE,
    WEEKDAY_CHOICES,
    WITHDRAW,
    Verdict,
)
from portail.extensions import db
from portail.family.cell_html import (
    ACTION_LABELS,
    cell_html,
    days_html,
    in_line_text,
    said_for,
    until_text,
    watch_key,
)
from portail.family.loaders import CellTarget, cell_or_404, family_of_current_user
from portail.family.routes import bp
from portail.formatting import PARIS, french_date, french_day, month_label
from portail.htmx import is_htmx
from portail.models import (
    Activity,
    BookingState,
    Enrolment,
    Request,
    RequestKind,
    User,
    ValidationMode,
    utcnow,
)
from portail.models.types import MAX_ID
from portail.services import billing, documents, planning, sickness, uploads
from portail.services.billing import runs
from portail.services.outbox import rollback

CONFIRM_TEXT = {
    RESERVE: "Confirmer la demande de réservation du {day} pour {child} — {activity} ?",
    ABSENCE: "Confirmer la demande d'absence du {day} pour {child} — {activity} ?",
    WITHDRAW: "Retirer la demande en cours du {day} pour {child} — {activity} ?",
    JOIN: "Inscrire {child} sur la liste d'attente du {day} — {activity} ?",
    CONFIRM: "Confirmer la place proposée le {day} pour {child} — {activity} ?",
    DECLINE: "Refuser la place proposée le {day} pour {child} — {activity} ?",
}
# Leaving a waiting list, giving up a place the town holds: the same actions, said for the day's state.
STATE_CONFIRM_TEXT = {
    (BookingState.WAITING, WITHDRAW): "Quitter la liste d'attente du {day} pour {child} — {activity} ?",
    (BookingState.OFFERED, DECLINE): "Renoncer à la place proposée le {day} pour {child} — {activity} ?",
}


def _zone() -> str:
    return current_app.config["SCHOOL_ZONE"]


# The days a planning URL may name: the periods and their neighbours computed around one stay dates.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def _parse_day(value: str | None) -> date:
    try:
        day = date.fromisoformat(value or "")
    except ValueError:
        abort(404)
    if not FIRST_DAY <= day <= LAST_DAY:
        abort(404)
    return day


def _ids(name: str) -> list[int]:
    return [int(value) for value in request.args.getlist(name) if value.isdigit()]


def colours(family) -> dict[int, int]:
    """Each child's colour index (stable: order of birth in the family)."""
    return {child.id: index % planning.CHILD_COLOURS for index, child in enumerate(family.children)}


def _screen() -> str:
    """The kind of screen: portail.js notes a narrow one in the `ecran` cookie."""
    return "etroit" if request.cookies.get("ecran") == "etroit" else "large"


def _view(choice: dict) -> str:
    """The view asked in the URL, else as the parent left it on this kind of screen (remembered per
    account), else the agenda on a phone and the month elsewhere (without JavaScript the month, a grid
    of marks on a phone). A month's day opened (`jour`) shows its agenda."""
    if request.args.get("jour"):
        return "agenda"
    return request.args.get("vue") or choice.get(_screen()) or ("agenda" if _screen() == "etroit" else "mois")


def _hidden_of(choice: dict, family_id: int) -> dict:
    """The children and activities the parent switched off in this family, remembered as what is
    hidden: a child or an activity added since is shown."""
    hidden = choice.get("masques", {}).get(str(family_id))
    return hidden if isinstance(hidden, dict) else {}


def _remember(choice: dict, view: str, family_id: int, hidden: dict) -> None:
    """Keep the view and the switches the URL asked for, for the next visit (a write only on a change;
    a month's day opened is not a view chosen)."""
    new = dict(choice)
    if "vue" in request.args and not request.args.get("jour"):
        new[_screen()] = view
    if "filtre" in request.args:
        masks = {key: value for key, value in choice.get("masques", {}).items() if key != str(family_id)}
        new["masques"] = masks | ({str(family_id): hidden} if hidden else {})
    if new != choice:  # (after the page is rendered: the commit expires what it read)
        db.session.execute(sa.update(User).where(User.id == current_user.id).values(planning_choice=new))
        db.session.commit()


def period_title(view: str, start: date, end: date) -> str:
    """Décembre 2026; Du 3 au 9 décembre 2026; Du 28 décembre 2026 au 3 janvier 2027."""
    if view == "mois":
        return month_label(start).capitalize()
    if start.month == end.month:
        return f"Du {french_date(start, year=False).split()[0]} au {french_date(end)}"
    return f"Du {french_date(start, year=start.year != end.year)} au {french_date(end)}"


@bp.get("/<int:family_id>/planning")
def planning_page(family_id: int):
    """The planning: agenda / month / 7-day / 5-day views, switches per child and activity (all in
    the URL)."""
    family = family_of_current_user(family_id)
    choice = current_user.planning_choice or {}
    view = _view(choice)
    if view not in planning.VIEWS:
        view = "mois"
    today = utcnow().astimezone(PARIS).date()
    asked = request.args.get("jour") or request.args.get("date")
    anchor = _parse_day(asked) if asked else today
    # The switches: shown children and activities in the URL, else those remembered as hidden.
    child_filter = activity_filter = None
    hidden_activities: set[int] = set()
    if request.args.get("filtre") == "1":
        child_filter, activity_filter = set(_ids("enfant")), set(_ids("activite"))
    elif hidden := _hidden_of(choice, family.id):
        child_filter = {child.id for child in family.children} - set(hidden.get("enfants", []))
        hidden_activities = set(hidden.get("activites", []))
    start, end = planning.period_of(view, anchor)
    activities, by_day = planning.cells(
        family.children, start, end, utcnow(), _zone(), activity_filter, child_filter
    )
    if hidden_activities:
        activity_filter = {activity.id for activity in activities} - hidden_activities
        by_day = {day: [c for c in row if c.activity.id in activity_filter] for day, row in by_day.items()}
    grid = view
    if view == "semaine":
        by_day = planning.without_idle_weekend(by_day)
        grid = "semaine" if len(by_day) == 7 else "semaine5"
    previous, following = planning.neighbours(view, anchor)
    # (one more query only when the period has no activity: enrolled at another time, or never)
    no_enrolment = not activities and not _family_activities(family)
    shown_children = {c.id for c in family.children} if child_filter is None else child_filter
    shown_activities = {a.id for a in activities} if activity_filter is None else activity_filter
    filtered = child_filter is not None or activity_filter is not None
    # The switches ride along every link of the page (view, previous, today, next, a month's day).
    kept = ""
    if filtered:
        pairs = [("filtre", 1), *(("enfant", i) for i in sorted(shown_children))]
        kept = "&" + urlencode(pairs + [("activite", i) for i in sorted(shown_activities)])
    # The month's days open their agenda (`jour`: opened, not chosen as the view to remember); relative
    # to the page, a URL's query alone, 31 times shorter.
    day_link = (f"?{kept[1:]}&jour=" if kept else "?jour=") if view == "mois" else None
    page = render_template(
        "family/planning.html",
        family=family,
        no_enrolment=no_enrolment,
        kept=kept,
        view=view,
        grid=grid,
        views=planning.VIEWS,
        anchor=anchor,
        title=period_title(view, start, end),
        start=start,
        by_day=by_day,
        day_link=day_link,
        previous=previous,
        following=following,
        today=today,
        colours=colours(family),
        shown_children=shown_children,
        activities=activities,
        shown_activities=shown_activities,
        shown_summary=_shown_summary(family, activities, shown_children, shown_activities),
        filtered=filtered,
        days_html=days_html,
        **planning_urls(family.id),
        icons=planning.STATE_ICONS,
        sick_state=BookingState.SICK,
    )
    hidden = {
        "enfants": sorted({c.id for c in family.children} - shown_children),
        "activites": sorted({a.id for a in activities} - shown_activities),
    }
    _remember(choice, view, family.id, hidden if hidden["enfants"] or hidden["activites"] else {})
    return page


def _shown_summary(family, activities, shown_children: set[int], shown_activities: set[int]) -> str:
    """What the switches show, said on their closed disclosure: "Léa, Tom · 3/3 activités"."""
    names = ", ".join(c.first_name for c in family.children if c.id in shown_children) or "aucun enfant"
    count = sum(1 for a in activities if a.id in shown_activities)
    return f"{names} · {count}/{len(activities)} activité{'s' if len(activities) > 1 else ''}"


def _cell_ids() -> tuple[int, int, date]:
    """The child, activity and day a cell request names (404 when they are not ids and a date)."""
    source = request.form if request.method == "POST" else request.args
    child_id, activity_id = source.get("enfant", ""), source.get("activite", "")
    if not (child_id.isdigit() and activity_id.isdigit()) or max(int(child_id), int(activity_id)) > MAX_ID:
        abort(404)  # (past MAX_ID: no row's id, and more than the databases' integers hold)
    return int(child_id), int(activity_id), _parse_day(source.get("jour"))


def _cell(family_id: int, now) -> tuple[CellTarget, planning.Cell]:
    """The cell a request is about, read in one query (404 for anything foreign or not shown)."""
    child_id, activity_id, day = _cell_ids()
    target = cell_or_404(family_id, child_id, activity_id, day)
    cell = planning.cell_of(target.child, target.activity, day, target.facts, target.reason, now, _zone())
    if cell is None:
        abort(404)
    return target, cell


def _render_cell(family_id: int, cell: planning.Cell, rank: int, announce: str | None = None):
    """A cell swapped in by htmx, taking the focus; `announce` goes to the page's live region."""
    colour = rank % planning.CHILD_COLOURS
    html = cell_html(
        cell,
        colour,
        url_for("family.planning_confirm", family_id=family_id),
        focus=True,
        today=utcnow().astimezone(PARIS).date(),
        sick_base=url_for("family.planning_sick", family_id=family_id),
    )
    if announce:
        html += Markup('<div hx-swap-oob="innerHTML:#annonce">{}</div>').format(announce)
    return html


CHANGED = bookings.DAY_CHANGED
# What the live region says after a decision on a cell, from the day's new state ("Réservation demandée
# pour Tom, mardi 8 décembre"): an activity decided at once says it is done, not asked.
ANNOUNCED = {
    BookingState.RESERVATION_REQUESTED: "Réservation demandée",
    BookingState.ABSENCE_REQUESTED: "Absence demandée",
    BookingState.RESERVED: "Réservation enregistrée",
    BookingState.ABSENT: "Absence enregistrée",
}


def _announcement(action: str, cell: planning.Cell, refused: str | None, left_line: bool = False) -> str:
    """The action done on the cell, or the services' French reason it was not (`refused`);
    `left_line`: the request withdrawn was a day on a waiting list."""
    if refused:
        return refused
    if cell.state in (BookingState.WAITING, BookingState.OFFERED) or action in (CONFIRM, DECLINE):
        done = in_line_text(cell, None) if cell.place else ANNOUNCED.get(cell.state, "Place refusée")
    elif action == WITHDRAW:
        done = "Liste d'attente quittée" if left_line else "Demande retirée"
    elif cell.state is BookingState.REFUSED:
        done = f"Réservation refusée ({cell.reason})" if cell.reason else "Réservation refusée"
    else:
        done = ANNOUNCED.get(cell.state, "Demande enregistrée")
    return f"{done} pour {cell.child.first_name}, {french_day(cell.day)} — {cell.activity.name}"


@bp.get("/<int:family_id>/planning/cellule")
def planning_cell(family_id: int):
    """One cell, as a fragment (used by Annuler, and asked again by a cell on a waiting list: `vu` is
    what it shows, and nothing is sent back while it is still so)."""
    target, cell = _cell(family_id, utcnow())
    seen = request.args.get("vu")
    if seen is not None:
        if seen == watch_key(cell):
            return "", 204
        html = cell_html(
            cell,
            target.rank % planning.CHILD_COLOURS,
            url_for("family.planning_confirm", family_id=family_id),
            today=utcnow().astimezone(PARIS).date(),
            sick_base=url_for("family.planning_sick", family_id=family_id),
        )
        what = (
            in_line_text(cell, utcnow().astimezone(PARIS).date())
            if cell.place
            else (cell.state.label if cell.state else "Inscrit")
        )
        announce = f"{cell.child.first_name}, {french_day(cell.day)} — {cell.activity.name} : {what}"
        # (appended: one round of refreshes may change several cells; portail.js empties it before)
        return html + Markup('<div hx-swap-oob="beforeend:#annonce"><p>{}</p></div>').format(announce)
    return _render_cell(family_id, cell, target.rank)


@bp.get("/<int:family_id>/planning/confirmer")
def planning_confirm(family_id: int):
    """The confirmation of a one-click request: a fragment for htmx, a page without JavaScript."""
    target, cell = _cell(family_id, utcnow())
    action = request.args.get("action")
    if action not in cell.verdict.actions:  # the day changed meanwhile (another tab): show it as it is now
        if not is_htmx():
            flash(CHANGED, "info")
            return redirect(_back(family_id))
        return _render_cell(family_id, cell, target.rank, CHANGED)
    own = said_for(cell.state, action, cell.verdict.actions) and STATE_CONFIRM_TEXT.get((cell.state, action))
    text = (own or CONFIRM_TEXT[action]).format(
        day=french_day(cell.day), child=target.child.first_name, activity=target.activity.name
    )
    deadline = cell.verdict.deadline
    said = JOIN if (cell.state, action) == (BookingState.WAITING, WITHDRAW) else action  # (as its cell)
    until = until_text(said, deadline) if deadline and action in (RESERVE, ABSENCE, WITHDRAW, JOIN) else None
    if action in (CONFIRM, DECLINE):
        until = in_line_text(cell, utcnow().astimezone(PARIS).date()) + "."
    context = dict(
        family_id=family_id,
        cell=cell,
        action=action,
        text=text,
        until=until,
        cost=cost_text(family_id, cell, action),
        back=_back(family_id),
        fragment=is_htmx(),
    )
    template = "family/_confirm.html" if is_htmx() else "family/confirm_page.html"
    return render_template(template, **context)


def cost_text(family_id: int, cell: planning.Cell, action: str) -> str | None:
    """What the day will cost the family, said before the parent confirms: billing's price of the
    day (the tariff in force, the family's quotient bracket), or that an absence in time is free."""
    if action == ABSENCE:
        return "Une absence demandée dans les délais n'est pas facturée."
    if action == JOIN:
        hours = cell_activity_hold(cell)
        return (
            "Si une place se libère, vous serez prévenu aussitôt par e-mail et sur le planning, et aurez "
            f"{hours} pour la confirmer (jamais après la date limite de réservation). "
            + (price_text(family_id, cell) or "").replace(
                "Prix de ce jour pour votre famille",
                "Si la place vous est attribuée, prix de ce jour pour votre famille",
            )
        ).strip()
    if action == CONFIRM:
        return price_text(family_id, cell)
    if action != RESERVE:
        return None
    return price_text(family_id, cell)


def cell_activity_hold(cell: planning.Cell) -> str:
    """ "2 h", "30 min", "1 h 30": how long a place freed is held (the activity read in the session)."""
    minutes = db.session.get(Activity, cell.activity.id).offer_hold_minutes
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest:02d}" if rest else "")


def price_text(family_id: int, cell: planning.Cell) -> str:
    """Billing's price of the day for this family, said before the parent confirms."""
    tariff, price, quotient = billing.family_quotes(family_id, cell.activity.id, [cell.day])[cell.day]
    if tariff is None:
        return "Aucun tarif n'est encore fixé pour ce jour : le service Enfance vous indiquera son prix."
    if quotient is None:
        return (
            f"Prix de ce jour pour votre famille : {billing.euros(price)} (tarif le plus élevé : pas de "
            "quotient familial valable ce mois-là ; mettez-le à jour dans votre Dossier Famille)."
        )
    return f"Prix de ce jour pour votre famille : {billing.euros(price)} (selon votre quotient familial)."


def _back(family_id: int) -> str:
    """Without JavaScript, back to the planning on the month of the day acted on."""
    return url_for("family.planning_page", family_id=family_id, date=request.values.get("jour"))


@bp.post("/<int:family_id>/planning/cellule")
def planning_act(family_id: int):
    """Do the confirmed action on one cell; htmx gets the new cell, a plain form gets the planning.

    The services check the rules themselves (a stale or forged action gets their French reason).
    """
    if request.form.get("action") not in ACTION_LABELS:
        _cell(family_id, utcnow())  # another family's cell, or ids that are not ids: 404 first
        abort(400)
    action = request.form["action"]
    now = utcnow()
    left_line = False

    def act() -> tuple[int, planning.Cell | None]:
        """The action on the cell read in this attempt, and the day's new cell (built before the
        commit, which expires the objects)."""
        nonlocal left_line
        target, cell = _cell(family_id, now)
        child, activity, day = target.child, target.activity, cell.day
        if action == WITHDRAW:
            left_line = cell.state is BookingState.WAITING
            bookings.withdraw(child, activity, day, current_user, now, _zone(), verdict=cell.verdict)
            after, cell = _cell(family_id, now)  # read again: the day is back to what it was
            return after.rank, cell
        if action in (CONFIRM, DECLINE):
            change = bookings.confirm_offer if action == CONFIRM else bookings.decline_offer
            change(child, activity, day, current_user, now)
            after, cell = _cell(family_id, now)
            return after.rank, cell
        if action == JOIN:
            bookings.submit(
                family_id,
                current_user,
                child,
                activity,
                RequestKind.RESERVATION,
                [day],
                now,
                _zone(),
                facts=target.facts,
                verdicts={day: cell.verdict},
                waiting=True,
                join_only=True,
            )
            after, cell = _cell(family_id, now)  # (its rank in the line, read)
            return after.rank, cell
        kind = RequestKind.RESERVATION if action == RESERVE else RequestKind.ABSENCE
        submitted = bookings.submit(
            family_id,
            current_user,
            child,
            activity,
            kind,
            [day],
            now,
            _zone(),
            facts=target.facts,
            verdicts={day: cell.verdict},  # (the rules' answer on this cell: not asked again)
        )
        return target.rank, planning.cell_after(child, activity, day, *submitted.days[day], now, _zone())

    message, category = "Votre demande est enregistrée.", "success"
    refused = None
    try:
        rank, cell = bookings.with_retries(act)
    except BookingError as error:
        rollback()
        # (the same click sent twice: the second finds the day already asked, and says so calmly)
        message, category = str(error), "success" if isinstance(error, AlreadyRequested) else "error"
        refused = message
        target, cell = _cell(family_id, now)
        rank = target.rank
    if cell is None:
        abort(404)
    if is_htmx():
        return _render_cell(family_id, cell, rank, _announcement(action, cell, refused, left_line))
    if refused is None and (action in (JOIN, CONFIRM, DECLINE) or left_line):  # (as htmx says it)
        message = _announcement(action, cell, None, left_line) + "."
    flash(message, category)
    return redirect(_back(family_id))


# The planning's own URLs, under its page's: built from it (one url_for instead of four, on the page
# parents open most; test_planning checks they are the routes' URLs).
PLANNING_PATHS = {
    "confirm_base": "/confirmer",
    "sick_base": "/malade",
    "period_url": "/periode",
    "cell_url": "/cellule",
}


def planning_urls(family_id: int) -> dict[str, str]:
    """The planning page's URL and those under it (confirmation, sick day, period form)."""
    page_url = url_for("family.planning_page", family_id=family_id)
    return {"page_url": page_url} | {name: page_url + path for name, path in PLANNING_PATHS.items()}


def _sick_target(family) -> tuple:
    """The child (of this family, else 404) and the day a sick day names."""
    source = request.form if request.method == "POST" else request.args
    child = next((c for c in family.children if str(c.id) == source.get("enfant")), None)
    if child is None:
        abort(404)
    return child, _parse_day(source.get("jour"))


def _from_cell() -> str | None:
    """The activity of the cell the sick day was opened from (htmx swaps it back), if any."""
    value = request.values.get("activite", "")
    return value if value.isdigit() else None


def _sick_page(
    family, sick: sickness.Preview, now, error: str | None = None, done: str | None = None, status=200
):
    """The sick day's confirmation, or its declaration: a fragment in place of the cell for htmx, a page
    without JavaScript."""
    context = dict(
        family=family,
        sick=sick,
        certificate_open=sick.certificate_open(now),
        error=error,
        done=done,
        activity_id=_from_cell(),
        formats=", ".join(name.upper() for name in ("pdf", "jpeg", "png")),
        back=_back(family.id),
        fragment=is_htmx(),
    )
    template = "family/_sick.html" if is_htmx() else "family/sick_page.html"
    return render_template(template, **context), status


def _certificate() -> tuple[bytes, str] | None:
    """The medical certificate sent with the form, if any: (its bytes, its name)."""
    upload = request.files.get("certificat")
    if upload is None or not upload.filename:
        return None
    return upload.read(uploads.MAX_BYTES + 1), upload.filename


def _sick_cells(family_id: int, child, day: date, announce: str) -> Markup:
    """After a sick day, for htmx: the cell it was declared from, and out of band the child's other
    activities of the day that it made sick."""
    opened = int(_from_cell() or 0)
    html = Markup()
    for activity in sickness.sick_activities(child, day):
        if activity.id == opened:
            continue
        target = cell_or_404(family_id, child.id, activity.id, day)
        cell = planning.cell_of(
            target.child, target.activity, day, target.facts, target.reason, utcnow(), _zone()
        )
        if cell is not None:
            colour = target.rank % planning.CHILD_COLOURS
            other = cell_html(cell, colour, url_for("family.planning_confirm", family_id=family_id))
            html += other.replace(
                Markup('<div class="cell'), Markup('<div hx-swap-oob="true" class="cell'), 1
            )
    target, cell = _cell(family_id, utcnow())
    return _render_cell(family_id, cell, target.rank, announce) + html


@bp.get("/<int:family_id>/planning/malade")
def planning_sick(family_id: int):
    """Enfant malade: before, the activities it covers, what will be billed and an optional certificate;
    after, the declaration and its certificate (to send while it still counts)."""
    family = family_of_current_user(family_id)
    child, day = _sick_target(family)
    now = utcnow()
    sick = sickness.preview(family, child, day, now, _zone())
    if sick.declaration is None and not sick.covered:  # the day changed meanwhile, or a forged link
        if is_htmx() and _from_cell():
            target, cell = _cell(family_id, now)
            return _render_cell(family_id, cell, target.rank, CHANGED)
        flash(CHANGED, "info")
        return redirect(_back(family_id))
    return _sick_page(family, sick, now)


@bp.post("/<int:family_id>/planning/malade")
def planning_sick_declare(family_id: int):
    """Declare the child sick that day, with its certificate if one is sent; the same declaration sent
    twice is told calmly. A file refused sends the confirmation back with the error, nothing saved."""
    family = family_of_current_user(family_id)
    child, day = _sick_target(family)
    now = utcnow()
    certificate = _certificate()
    message = f"« Enfant malade » est enregistré pour {child.first_name}, {french_day(day)}."
    category = "success"
    try:
        bookings.with_retries(
            lambda: sickness.declare(family, current_user, child, day, now, _zone(), certificate)
        )
        runs.hand_over_queued()  # (a certificate changing a month billed already: its correction)
    except AlreadyRequested as error:
        rollback()
        message = str(error)
    except BookingError as error:
        rollback()
        message, category = str(error), "error"
    except (uploads.UploadError, documents.DocumentError) as error:
        rollback()
        return _sick_page(
            family, sickness.preview(family, child, day, now, _zone()), now, str(error), status=422
        )
    if is_htmx() and _from_cell():
        return _sick_cells(family_id, child, day, message)
    flash(message, category)
    return redirect(_back(family_id))


@bp.post("/<int:family_id>/planning/malade/certificat")
def planning_sick_certificate(family_id: int):
    """The medical certificate of a day declared sick, sent afterwards (while it still counts)."""
    family = family_of_current_user(family_id)
    child, day = _sick_target(family)
    now = utcnow()
    if sickness.declaration_of(child, day) is None:
        abort(404)
    certificate = _certificate()
    error = done = None
    if certificate is None:
        error = "Choisissez le fichier du certificat médical."
    else:
        try:
            bookings.with_retries(
                lambda: sickness.attach_certificate(
                    family, current_user, sickness.declaration_of(child, day), certificate, now
                )
            )
            runs.hand_over_queued()  # (a month billed already: its correction)
            done = "Le certificat médical est envoyé."
        except sickness.CertificateSent as sent:  # (sent twice: the first copy sent it)
            rollback()
            done = str(sent)
        except (sickness.SicknessError, uploads.UploadError, documents.DocumentError) as refused:
            rollback()
            error = str(refused)
    if error is None and not is_htmx():
        flash(done, "success")
        return redirect(
            url_for(
                "family.planning_sick",
                family_id=family.id,
                enfant=child.id,
                jour=day.isoformat(),
                activite=_from_cell(),
            )
        )
    sick = sickness.preview(family, child, day, now, _zone())
    return _sick_page(family, sick, now, error, done, status=422 if error else 200)


@bp.get("/<int:family_id>/maladies")
def planning_sick_list(family_id: int):
    """Enfant malade : mes déclarations — each day declared, its activities, its certificate."""
    family = family_of_current_user(family_id)
    return render_template("family/sick_list.html", family=family, declarations=sickness.of_family(family))


@bp.route("/<int:family_id>/planning/periode", methods=["GET", "POST"])
def planning_period(family_id: int):
    """Réservations: one form for a period (children, activity, dates, weekdays, type) with a live preview.

    The preview (htmx on every change, "Voir l'aperçu" without JavaScript) is a POST that changes
    nothing: a GET would put the form's CSRF token in the URL, so in logs and history.
    """
    family = family_of_current_user(family_id)
    activities = _family_activities(family)
    data = _period_data(family, activities)
    sending = request.method == "POST" and not _previewing()
    if sending and not data["errors"]:
        created = already = 0
        errors = []
        for child in data["children"]:
            try:
                bookings.with_retries(
                    lambda child=child: bookings.submit(
                        family.id,
                        current_user,
                        child,
                        data["activity"],
                        data["kind"],
                        data["days"],
                        utcnow(),
                        _zone(),
                        period=(data["start"], data["end"], "".join(data["weekdays_checked"])),
                        waiting=data["waiting"],
                    )
                )
                created += 1
            except AlreadyRequested:  # (the form sent twice: the first copy made the request)
                rollback()
                already += 1
            except BookingError as error:
                rollback()
                errors.append(f"{child.first_name} : {error}")
        for error in errors:
            flash(error, "error")
        if created:
            flash(
                f"{created} demande{'s' if created > 1 else ''} enregistrée{'s' if created > 1 else ''}.",
                "success",
            )
        if already:
            flash("Cette demande est déjà enregistrée.", "success")
        if created or already:
            return redirect(url_for("family.planning_requests", family_id=family.id))
    if data["submitted"] and not data["errors"] and not data["preview"]:
        data["preview"] = _previews(data)
        data["costs"] = _costs(family, data) if data["kind"] is RequestKind.RESERVATION else {}
    template = "family/_period_preview.html" if is_htmx() else "family/period.html"
    status = 422 if sending and data["errors"] else 200
    return render_template(
        template,
        family=family,
        activities=activities,
        weekdays=WEEKDAY_CHOICES,
        refreshed=is_htmx(),
        **data,
    ), status


def _family_activities(family) -> list[Activity]:
    return list(
        db.session.scalars(
            sa.select(Activity)
            .where(
                Activity.id.in_(
                    sa.select(Enrolment.activity_id).where(
                        Enrolment.child_id.in_([c.id for c in family.children])
                    )
                )
            )
            .order_by(Activity.name)
        )
    )


def _previewing() -> bool:
    """A preview of the period form (a GET, or a POST asking for the aperçu) rather than a submission."""
    return request.method == "GET" or bool(request.form.get("apercu"))


def _period_data(family, activities) -> dict:
    """Read and check the period form (a preview, or a POST to submit)."""
    # A POST reads its form only: request.values would add the URL's query, and a form posted back
    # to a preview's URL (?jours=1&jours=4…) sent every weekday twice.
    source = request.form if request.method == "POST" else request.args
    # A preview checks the form once an activity is chosen (not while the parent fills it in); a
    # request sent is always checked, an empty one included (the error summary says what is missing).
    submitted = bool(source.get("activite")) or (request.method == "POST" and not _previewing())
    errors: dict[str, str] = {}
    child_ids = {int(v) for v in source.getlist("enfant") if v.isdigit()}
    children = [c for c in family.children if c.id in child_ids]
    activity = next((a for a in activities if str(a.id) == source.get("activite")), None)
    kind = RequestKind.ABSENCE if source.get("type") == "absence" else RequestKind.RESERVATION
    weekdays = [d for d in source.getlist("jours") if d in "1234567" and d]
    start = end = None
    try:
        start = date.fromisoformat(source.get("du", ""))
        end = date.fromisoformat(source.get("au", ""))
    except ValueError:
        if submitted:
            errors["du"] = "Indiquez les dates de début et de fin (jj/mm/aaaa)."
    if submitted:
        if not children:
            errors["enfant"] = "Choisissez au moins un enfant."
        if activity is None:
            errors["activite"] = "Choisissez une activité."
        if start and end and start > end:
            errors["au"] = "La date de fin doit être après la date de début."
        if start and end and (end - start).days > 370:
            errors["au"] = "La période ne peut pas dépasser un an."
        if not weekdays:
            errors["jours"] = "Cochez au moins un jour de la semaine."
    days, preview = [], []
    if submitted and not errors:
        day = start
        while day <= end:
            if str(day.isoweekday()) in weekdays:
                days.append(day)
            day += timedelta(days=1)
    data = dict(
        submitted=submitted,
        errors=errors,
        children=children,
        child_ids=child_ids,
        activity=activity,
        kind=kind,
        waiting=kind is RequestKind.RESERVATION and source.get("attente") == "1",
        weekdays_checked=weekdays,
        start=start,
        end=end,
        days=days,
        preview=preview,
        costs={},
        du=source.get("du", ""),
        au=source.get("au", ""),
    )
    # A valid submission checks every day itself: the preview is only computed for display.
    if submitted and not errors and _previewing():
        data["preview"] = _previews(data)
        data["costs"] = _costs(family, data) if kind is RequestKind.RESERVATION else {}
    return data


def _costs(family, data: dict) -> dict[int, tuple[int, int, bool]]:
    """Each child's cost of the days it can ask (billing's price of each day), how many have no
    tariff yet, and whether some are at the highest bracket for want of a valid quotient (two
    queries for the period)."""
    quotes = billing.family_quotes(family.id, data["activity"].id, data["days"])
    costs = {}
    for child, verdicts, _in_line in data["preview"]:
        asked = [quotes[day] for day, verdict in verdicts if verdict.actions]
        costs[child.id] = (
            sum(price for _t, price, _q in asked),
            sum(1 for tariff, _p, _q in asked if tariff is None),
            any(tariff is not None and quotient is None for tariff, _p, quotient in asked),
        )
    return costs


def _places_left(activity: Activity, days: list[date]) -> dict[date, int]:
    """The places left on the days that have a counter (the others have them all)."""
    if not days:
        return {}
    rows = db.session.connection().execute(
        booking_facts.COUNTERS, {"ids": [activity.id], "start": min(days), "end": max(days)}
    )
    return {day: activity.capacity - booked for _a, day, booked, _waiting in rows}


def _previews(data: dict) -> list:
    """Each chosen child's verdict for every day of the period, and the full days the request puts on
    the waiting list (asked for: else they are excluded, with how to ask)."""
    activity = data["activity"]
    # An automatic activity's places go to the children in turn: those the earlier children take
    # are not left for the next (who is put in line, or told the day is full).
    counted = activity.capacity is not None and activity.validation_mode is ValidationMode.AUTOMATIC
    left = (
        _places_left(activity, data["days"]) if counted and data["kind"] is RequestKind.RESERVATION else None
    )
    found = []
    for child in data["children"]:
        verdicts, in_line = [], []
        for day, verdict in bookings.preview(child, activity, data["kind"], data["days"], utcnow(), _zone()):
            if left is not None and RESERVE in verdict.actions:
                if left.get(day, activity.capacity) > 0:
                    left[day] = left.get(day, activity.capacity) - 1
                elif activity.waiting_list:
                    verdict = Verdict(
                        {JOIN}, reason="Complet (place prise par un autre enfant de la demande)"
                    )
                else:
                    verdict = Verdict(reason="Complet (place prise par un autre enfant de la demande)")
            if JOIN in verdict.actions and data["waiting"]:
                in_line.append(day)
                continue
            if JOIN in verdict.actions:
                verdict = Verdict(
                    reason=f"{verdict.reason} (liste d'attente possible : cochez la case ci-dessus)"
                )
            verdicts.append((day, verdict))
        found.append((child, verdicts, in_line))
    return found


@bp.get("/<int:family_id>/demandes")
def planning_requests(family_id: int):
    """Planning / Liste: every reservation and absence request of the family, filterable by child."""
    family = family_of_current_user(family_id)
    child_id = request.args.get("enfant", type=int)
    query = (
        sa.select(Request)
        .where(Request.family_id == family.id)
        .options(
            sa.orm.selectinload(Request.lines),
            sa.orm.joinedload(Request.activity),
            sa.orm.joinedload(Request.child),
        )
        .order_by(Request.created_at.desc(), Request.id.desc())
    )
    if child_id:
        query = query.where(Request.child_id == child_id)
    page = db.paginate(
        query, page=max(request.args.get("page", 1, type=int), 1), per_page=20, error_out=False
    )
    now = utcnow()
    return render_template(
        "family/requests.html",
        family=family,
        page=page,
        child_id=child_id,
        state_of=planning.request_state,
        may_withdraw=lambda item: bookings.open_to_withdrawal(item, now, _zone()),
        kinds=planning.KIND_LABELS,
    )
