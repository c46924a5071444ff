"""The HTML of the planning's days and cells.

A month planning shows a hundred cells or more; a Jinja macro call per cell (and the template's
calls per day) cost more than everything else on the page, so days and cells are built here with
each value escaped (markupsafe's C `escape`; the names of a child and an activity are escaped once,
not once per cell). The single-cell fragments (after a click) use the same function, so a cell
looks the same everywhere.
"""

from datetime import date
from functools import lru_cache

from markupsafe import Markup, escape

from portail.bookings.rules import ABSENCE, CONFIRM, DECLINE, JOIN, RESERVE, WITHDRAW
from portail.bookings.transitions import sick_open
from portail.formatting import PARIS, clock, french_day, french_instant
from portail.models import BookingState
from portail.services.planning import STATE_ICONS, Cell

ACTION_LABELS = {
    RESERVE: "Réserver",
    ABSENCE: "Déclarer une absence",
    WITHDRAW: "Retirer la demande",
    JOIN: "S'inscrire sur la liste d'attente",
    CONFIRM: "Confirmer la place",
    DECLINE: "Refuser la place",
}
# The same action said for what the day is: leaving a waiting list, giving up a place held for the
# agent's decision (an activity validated by hand: no place to confirm).
STATE_ACTION_LABELS = {
    (BookingState.WAITING, WITHDRAW): "Quitter la liste d'attente",
    (BookingState.OFFERED, DECLINE): "Renoncer à la place",
}


def said_for(state: BookingState | None, action: str, actions: set[str]) -> str | None:
    """The state's own wording of an action, if it has one."""
    if state is BookingState.OFFERED and CONFIRM in actions:
        return None
    return STATE_ACTION_LABELS.get((state, action))


# A reserved day of today or tomorrow past its absence deadline: the child's sick day, declared (with its
# billing preview) from the cell; a day declared sick: its declaration, to send the certificate.
SICK_ACTION, SICK_DECLARED = "Enfant malade", "Déclaration et certificat"
# Until when the day stays open to that action (its deadline, in Paris time): on the cell and in its
# confirmation.
UNTIL_TEXT = {
    RESERVE: "Réservable jusqu'au {until}.",
    ABSENCE: "Absence possible jusqu'au {until}.",
    WITHDRAW: "Modifiable jusqu'au {until}.",
    JOIN: "Liste d'attente ouverte jusqu'au {until}.",
}
# The states a cell keeps live (portail.js asks for it again every minute, and when the page is shown
# again, with its `data-vu`: what it shows).
LIVE = (BookingState.WAITING, BookingState.OFFERED)


def ordinal(rank: int) -> str:
    """1er, 2e, 3e…"""
    return "1er" if rank == 1 else f"{rank}e"


def watch_key(cell: Cell) -> str:
    """What a live cell shows that may change without the family: its state, rank and offer."""
    return _watch_key(cell.state, cell.place)


@lru_cache(maxsize=4096)
def _watch_key(state: BookingState | None, place) -> str:
    # (an offer does not show its rank: a child moved ahead in its line changes nothing it shows)
    rank = place.rank if place and state is BookingState.WAITING else 0
    return f"{state.value if state else ''}.{rank}.{bool(place and place.offered_until)}"


def in_line_text(cell: Cell, today: date | None) -> str:
    """ "Liste d'attente — 3e"; "Une place s'est libérée — à confirmer avant 18:30" (with the date
    when it is not today)."""
    return _in_line_text(cell.state, cell.place, today)


@lru_cache(maxsize=4096)
def _in_line_text(state: BookingState, place, today: date | None) -> str:
    if state is BookingState.WAITING:
        return f"Liste d'attente — {ordinal(place.rank)}" if place else "Liste d'attente"
    if place is None or place.offered_until is None:
        return "Place proposée"
    until = place.offered_until
    when = clock(until) if until.astimezone(PARIS).date() == today else french_instant(until)
    return f"Une place s'est libérée — à confirmer avant {when}"


@lru_cache(maxsize=4096)  # (keyed by strings, whose hashes Python keeps: cheaper than by a Who)
def _who(initials: str, first_name: str, colour: int) -> tuple[str, str]:
    """The "who" badge of a child, and its escaped first name."""
    first_name = escape(first_name)
    badge = f'<span class="who child-{colour:d}">{escape(initials)}<span class="visually-hidden"> {first_name}</span></span> '
    return badge, first_name


@lru_cache(maxsize=4096)
def _text(value: str) -> str:
    """Escaped once: labels and reasons repeat from cell to cell."""
    return escape(value)


@lru_cache(maxsize=4096)
def until_text(action: str, deadline) -> str:
    """ "Réservable jusqu'au vendredi 4 décembre à 10:00.", escaped: on the cell and its confirmation."""
    return escape(UNTIL_TEXT[action].format(until=french_instant(deadline)))


@lru_cache(maxsize=4096)
def _state(
    state: BookingState | None, refusal: str | None, why: str | None, label: str | None = None
) -> tuple[str, str]:
    """The state's CSS name and its HTML (legend icon, label, the reason nothing can be done): the same
    for many cells."""
    label = label or (state.label if state else "Inscrit")
    text = f'<span class="state"><span class="icon" aria-hidden="true">{STATE_ICONS[state]}</span> {escape(f"{label} ({refusal})" if refusal else label)}</span>'
    if why:
        text += f'<span class="why">{escape(why)}</span>'
    return (state.value if state else "enrolled"), text


def cell_html(
    cell: Cell,
    colour: int,
    confirm_base: str,
    focus: bool = False,
    past: bool = False,
    until: bool = True,
    today: date | None = None,
    sick_base: str | None = None,
) -> Markup:
    """One cell: who, which activity, its state with the legend icon, then the actions or why none.

    `focus`: a cell swapped in after a click takes the focus (htmx honours `autofocus` in what it
    swaps): its first action, else the cell itself, so keyboard and screen-reader users stay there.
    `past`: a day gone by says its state only (why it can no longer be changed goes without saying).
    `until`: an open day says until when (not in the month's grid, where the confirmation says it).
    `today`, `sick_base`: the town's date and the sick day's URL, to offer "Enfant malade" (and the
    declaration on a day declared sick).
    """
    child, verdict, state = cell.child, cell.verdict, cell.state
    badge, first_name = _who(child.initials, child.first_name, colour)
    activity = _text(cell.activity.name)
    # a pending request keeps the old reason for a withdrawal
    # (a day cancelled by the town says its reason, the closure's, after its state: "Annulé par la mairie (Grève)")
    refusal = cell.reason if state in (BookingState.REFUSED, BookingState.CANCELLED) else None
    cancelled = state is BookingState.CANCELLED
    live = state in LIVE
    label = in_line_text(cell, today) if live else None
    # (a full day says so beside its waiting list; a place the town holds, why the family waits)
    why = (
        None
        if (verdict.actions and JOIN not in verdict.actions and not live) or past or cancelled
        else verdict.reason
    )
    css, state_html = _state(state, refusal, why, label)
    iso = cell.day.isoformat()
    actions = ""
    if verdict.actions:
        # confirm_base is a URL path of ours and the values are numbers and an ISO date: nothing to escape.
        base = f"{confirm_base}?enfant={child.id}&amp;activite={cell.activity.id}&amp;jour={iso}&amp;action="
        short = f"{iso[8:10]}/{iso[5:7]}"
        actions = "".join(
            f'<a class="cell-action" href="{base}{action}">{(live and said_for(state, action, verdict.actions)) or ACTION_LABELS[action]}'
            f'<span class="visually-hidden"> : {first_name}, {activity}, {short}</span></a>'
            for action in (sorted(verdict.actions) if len(verdict.actions) > 1 else verdict.actions)
        )
        if until and verdict.deadline and state is not BookingState.OFFERED:
            first = min(verdict.actions)  # (the actions in their order on the cell)
            if state is BookingState.WAITING:  # (its deadline closes the line)
                first = JOIN
            actions = f'<span class="why">{until_text(first, verdict.deadline)}</span>{actions}'
    if sick_base is not None:
        label = None
        if state is BookingState.SICK:
            label = SICK_DECLARED
        elif today is not None and sick_open(state, verdict, cell.day, today):
            label = SICK_ACTION
        if label:
            actions += (
                f'<a class="cell-action" href="{sick_base}?enfant={child.id}&amp;activite={cell.activity.id}'
                f'&amp;jour={iso}">{label}<span class="visually-hidden"> : {first_name}, '
                f"{activity}, {iso[8:10]}/{iso[5:7]}</span></a>"
            )
    focused = ""
    if focus and actions:
        actions = actions.replace("<a ", "<a autofocus ", 1)
    elif focus:
        focused = ' tabindex="-1" autofocus'
    if live and not past:  # (asked again by portail.js with what it shows: 204 while it is the same)
        focused += f' data-vu="{escape(watch_key(cell))}"'
    return Markup(
        f'<div class="cell state-{css}" id="{cell.dom_id}"{focused}>{badge}<span class="what">{activity}</span> {state_html}{actions}</div>'
    )


def days_html(
    by_day: dict[date, list[Cell]],
    colours: dict[int, int],
    confirm_base: str,
    today: date,
    day_link: str | None = None,
    sick_base: str | None = None,
) -> Markup:
    """Every day shown, a section each with its title and its cells (one call from the template).

    `day_link`: the month's days link to that day's agenda (`day_link` + ISO date): on a phone the
    month is a grid of marks, and a tap on a day opens it. A day without any cell says so in one line.
    """
    parts = []
    link = escape(day_link) if day_link is not None else None
    for day, cells in by_day.items():
        iso = day.isoformat()
        name = _text(french_day(day))
        classes = (
            "day"
            + (" today" if day == today else "")
            + (" weekend" if day.weekday() >= 5 else "")
            + ("" if cells else " empty")
        )
        hint = ' <span class="hint">(aujourd\'hui)</span>' if day == today else ""
        title = name
        if link is not None:
            weekday, number, month = name.split(" ", 2)
            title = (
                f'<a class="day-link" href="{link}{iso}"><span class="long">{weekday} </span>{number}'
                f'<span class="long"> {month}</span></a>'
            )
        parts.append(f'<section class="{classes}">\n<h3 class="day-title">{title}{hint}</h3>\n')
        past = day < today
        parts.extend(
            [
                cell_html(
                    cell,
                    colours[cell.child.id],
                    confirm_base,
                    past=past,
                    until=link is None,
                    today=today,
                    sick_base=sick_base,
                )
                for cell in cells
            ]
        )
        if not cells and link is None:  # (the month's grid shows an empty day as such)
            parts.append('<p class="nothing">Rien de prévu</p>')
        parts.append("\n</section>\n")
    return Markup("".join(parts))
