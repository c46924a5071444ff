"""The sick-day rule: what a town bills of the days a family declared its child sick.

A sickness is a run of declared days no more than SAME_SICKNESS_GAP days apart (a Friday and the
Monday after are one sickness). Its first `billed` days are billed (the *carence*); the days after
are free when a medical certificate was sent within `certificate_days` days of its first day, and
billed otherwise. Billing (invoicing.compute) and the planning's preview (services.sickness) both
ask `sick_days`, so the parent is told before sending what the invoice will say.
"""

from datetime import date, timedelta

SAME_SICKNESS_GAP = 3
CARENCE, CERTIFIED, UNCERTIFIED = (
    "Absence maladie (carence)",
    "Absence maladie avec certificat",
    "Absence maladie sans certificat",
)
BILLED = {CARENCE: True, CERTIFIED: False, UNCERTIFIED: True}


def sick_days(declared: dict[date, date | None], billed: int, certificate_days: int) -> dict[date, str]:
    """The rule applied to each declared day of one child: CARENCE, CERTIFIED (free) or UNCERTIFIED.

    `declared`: each declared day → the day its certificate was sent (None: none sent).
    """
    rules: dict[date, str] = {}
    for sickness in _sicknesses(sorted(declared)):
        first = sickness[0]
        sent = [declared[day] for day in sickness if declared[day] is not None]
        certified = bool(sent) and min(sent) <= first + timedelta(days=certificate_days)
        for position, day in enumerate(sickness):
            rules[day] = CARENCE if position < billed else CERTIFIED if certified else UNCERTIFIED
    return rules


def _sicknesses(days: list[date]) -> list[list[date]]:
    runs: list[list[date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days <= SAME_SICKNESS_GAP:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs
