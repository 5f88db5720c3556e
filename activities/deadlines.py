"""Deadlines counted in working days, computed outside workflow code.

Public holidays come from the `holidays` package, whose data changes between releases; computing a
deadline in a (local) activity records the answer in history, so a replay after an upgrade of that
package sees the same deadline instead of a different timer.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import activity

from rules.calendar import add_working_days
from schemas.events import WorkingDayDeadlineInput


@activity.defn(name="working_day_deadline")
async def working_day_deadline(request: WorkingDayDeadlineInput) -> datetime:
    due = add_working_days(request.start.date(), request.working_days, request.country)
    return datetime.combine(due, request.start.timetz())
