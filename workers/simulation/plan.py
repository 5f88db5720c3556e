"""Sampling the programme (issue 17): one `ApplicantPlan` per application, from the behaviour model and a seed.

Each application draws from its own `random.Random(f"{seed}:{index}")`, so its plan depends on the seed and its
index only: never on how many other applications there are before it in time, nor on scheduling. Dates are
drawn on the programme's calendar (February 2022 onwards) and shifted by whole weeks to the time-skipping
server's clock, which starts at the real now and only moves forward (weekdays are kept; ADR 0027).
"""

from __future__ import annotations

import calendar
import random
from datetime import UTC, date, datetime, time, timedelta

from rules.calendar import working_days
from schemas.exchange import ApplicationInput
from schemas.policy import LumpSumPricing, Policy
from schemas.simulation import ApplicantPlan, Behaviour, City, DayRange, ReviewerPlan

ACTION_HOUR = time(8, 0, tzinfo=UTC)  # applications arrive at 08:00 UTC (plus their slot); see actors.HOURS
REVIEWER_PLANS = 4  # the two first reviewers and up to two replacements (max_reassignment_rounds)
HORIZON_DAYS = 400  # an actor gives up this long after its application arrived
SLOTS = 3600
CALENDAR_YEAR = timedelta(weeks=52)


def calendar_shift(programme_start: date, today: date | None = None) -> timedelta:
    """Whole 52-week years that move the programme's first day past `today` (the server's clock starts at the
    real now and only moves forward; applications must fall within the contract's plausible dates). Weekdays
    are kept, a date moves a day or two within its year, and the shift stays the same for a whole year of runs,
    so the same seed gives the same figures whichever day in that year the run happens (ADR 0027)."""
    today = today or datetime.now(UTC).date()
    shift = timedelta(0)
    while programme_start + shift <= today + timedelta(days=1):
        shift += CALENDAR_YEAR
    return shift


def action_instant(day: date, slot_seconds: int) -> datetime:
    return datetime.combine(day, ACTION_HOUR) + timedelta(seconds=slot_seconds)


def plan_programme(behaviour: Behaviour, seed: int, shift: timedelta, policy: Policy) -> list[ApplicantPlan]:
    """Every application's plan, in index order; `shift` moves programme dates to the server's calendar."""
    ranks: dict[str, int] = {}
    drawn = []
    for index in range(behaviour.programme.applications):
        rng = random.Random(f"{seed}:{index}")  # noqa: S311 - a simulation's seeded stream, not a secret
        partnership = rng.choices(behaviour.partnerships, weights=[p.weight for p in behaviour.partnerships])[0]
        rank = ranks.get(partnership.partnership_id, 0)
        ranks[partnership.partnership_id] = rank + 1
        drawn.append((rng, index, partnership.partnership_id, rank))
    short = contended(behaviour, ranks, policy)
    return [
        _plan(behaviour, rng, index, pid, rank % SLOTS if pid in short else 0, shift, policy)
        for rng, index, pid, rank in drawn
    ]


def contended(behaviour: Behaviour, applications: dict[str, int], policy: Policy) -> set[str]:
    """The partnerships whose budget could run short: applications times the largest lump sum exceed it.

    Their applications act at instants of their own (their rank, in seconds after the hour), so who reaches the budget
    first is decided by time, not by thread scheduling. Everyone else acts on the hour, together: with money
    for all, order changes nothing, and one instant for many people is what lets the server skip fast (ADR 0027).
    """
    cap = policy.pricing.lump_sum_cap_cents if isinstance(policy.pricing, LumpSumPricing) else None
    return {
        p.partnership_id
        for p in behaviour.partnerships
        if cap is None or applications.get(p.partnership_id, 0) * cap > p.budget_cents
    }


def _arrival_day(behaviour: Behaviour, rng: random.Random) -> date:
    programme = behaviour.programme
    month = rng.choices(range(programme.months), weights=programme.arrival_weights)[0]
    year, month_index = divmod(programme.start.month - 1 + month, 12)
    first = date(programme.start.year + year, month_index + 1, 1)
    days = calendar.monthrange(first.year, first.month)[1]
    return max(programme.start, first + timedelta(days=rng.randrange(days)))


def _days(rng: random.Random, span: DayRange) -> int:
    return rng.randint(span.low, span.high)


def _stay(rng: random.Random, behaviour: Behaviour, arrival: date, country: str) -> tuple[date, date]:
    """A stay from a Monday: 5 working days, or 3-4 for a share of them; moved a week on where holidays fall."""
    length = rng.choice((3, 4)) if rng.random() < behaviour.applicants.short_stay_share else 5
    monday = arrival + timedelta(days=_days(rng, behaviour.applicants.lead_days))
    monday += timedelta(days=(7 - monday.weekday()) % 7)
    while working_days(monday, monday + timedelta(days=length - 1), country) < length:
        monday += timedelta(days=7)
    return monday, monday + timedelta(days=length - 1)


def _organisation(kind: str, index: int, city: City) -> dict[str, object]:
    return {
        "organisation_id": f"sim-{kind}-{index:05d}",
        "name": f"Simulated {'visitor' if kind == 'vo' else 'host'} {index}",
        "type": "cluster_organisation",
        "country": city.country,
        "latitude": city.latitude,
        "longitude": city.longitude,
    }


def _application(
    behaviour: Behaviour, rng: random.Random, index: int, partnership_id: str, slot: int, shift: timedelta
) -> ApplicationInput:
    arrival = _arrival_day(behaviour, rng)
    visitor_city = rng.choice(behaviour.cities)
    abroad = [c for c in behaviour.cities if c.country != visitor_city.country]
    ineligible = rng.random() < behaviour.applicants.ineligible_share
    host_city = visitor_city if ineligible else rng.choice(abroad)  # R5: same country, refused at screening
    start, end = _stay(rng, behaviour, arrival + shift, host_city.country)
    return ApplicationInput.model_validate(
        {
            "application_id": f"sim-{index:05d}",
            "visitor": _organisation("vo", index, visitor_city),
            "host": _organisation("ho", index, host_city),
            "visitor_partnership_id": partnership_id,
            "host_partnership_id": partnership_id,
            "start_date": start,
            "end_date": end,
            "goals": "Simulated exchange: learn how the host runs its shared facilities.",
            "submitted_by": "officer-simulation",
            "submitted_at": action_instant(arrival + shift, slot),
        }
    )


def _reviewers(behaviour: Behaviour, rng: random.Random) -> tuple[ReviewerPlan, ...]:
    model = behaviour.reviewers
    plans = []
    for k in range(REVIEWER_PLANS):
        absent = k < 2 and rng.random() < model.absent_share  # replacements always answer
        late = rng.random() < model.late_share
        after = _days(rng, model.late_days if late else model.on_time_days)
        reject = rng.random() < model.reject_share
        plans.append(
            ReviewerPlan(after_days=None if absent else after, recommendation="reject" if reject else "approve")
        )
    return tuple(plans)


def _plan(
    behaviour: Behaviour,
    rng: random.Random,
    index: int,
    partnership_id: str,
    slot: int,
    shift: timedelta,
    policy: Policy,
) -> ApplicantPlan:
    app = _application(behaviour, rng, index, partnership_id, slot, shift).model_copy(
        update={"policy_version": policy.version}
    )
    applicants, reporting, finance = behaviour.applicants, behaviour.reporting, behaviour.finance
    reviewers = _reviewers(behaviour, rng)
    sign = None if rng.random() < behaviour.agreement.lapse_share else _days(rng, behaviour.agreement.sign_days)
    withdraw_days = _days(rng, applicants.withdrawal_days_before_start)
    withdraws = rng.random() < applicants.withdrawal_share
    no_show = not withdraws and rng.random() < applicants.no_show_share
    shortened = not withdraws and not no_show and rng.random() < applicants.shortened_stay_share
    missing = rng.random() < reporting.missing_share
    late = rng.random() < reporting.late_share
    report = None if missing else _days(rng, reporting.late_days if late else reporting.on_time_days)
    delayed = rng.random() < finance.delayed_share
    assert app.submitted_at is not None
    return ApplicantPlan(
        index=index,
        slot_seconds=slot,
        application=app,
        criteria=tuple(policy.review.criteria),
        reviewers=reviewers,
        sign_after_days=sign,
        withdraw_on=max(app.submitted_at.date() + timedelta(days=1), app.start_date - timedelta(days=withdraw_days))
        if withdraws
        else None,
        no_show=no_show,
        actual_end_date=app.end_date - timedelta(days=1) if shortened and app.end_date > app.start_date else None,
        report_after_days=report,
        validate_after_days=_days(rng, reporting.validation_days),
        pay_after_days=_days(rng, finance.delayed_days if delayed else finance.on_time_days),
        horizon=app.submitted_at + timedelta(days=HORIZON_DAYS),
    )
