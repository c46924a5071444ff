"""Amounts typed in euros to integer cents, the months billed, and the billing's error for the agent
(amounts are shown by `formatting.euros`)."""

from datetime import date, timedelta


class BillingError(ValueError):
    """A French message for the agent."""


def parse_euros(text: str) -> int:
    """'3,30', '3.30', '3' or '1 234,5 €' → cents; ValueError for anything else."""
    cleaned = (
        (text or "")
        .replace("€", "")
        .replace("\u202f", "")
        .replace("\u00a0", "")
        .replace(" ", "")
        .replace(",", ".")
        .strip()
    )
    if not cleaned or cleaned.count(".") > 1 or not cleaned.replace(".", "").isdigit():
        raise ValueError(text)
    whole, _, part = cleaned.partition(".")
    if len(part) > 2:
        raise ValueError(text)
    return int(whole or "0") * 100 + int((part + "00")[:2])


def month_bounds(month: date) -> tuple[date, date]:
    """The first and last days of the month."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def previous_month(today: date) -> date:
    """The first day of the month before `today`'s."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)
