"""The programme's policy over HTTP: the versions on file, and dry runs of a candidate (`cx policy ...`).

A dry run validates the candidate exactly as a policy file is validated (schemas/policy.py), reads the
open exchanges from the read model and evaluates each under the candidate (rules/simulate.py). It
writes nothing anywhere.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends

from clients.api import examples
from clients.api.body import StrictBody
from clients.api.context import Engine, Permit, permitted
from clients.api.models import PolicyDryRunInput, PolicyVersion
from clients.api.openapi import example_response
from clients.api.problems import ProblemError, invalid, problem_responses
from clients.policy_commands import load_open_cases
from rules.simulate import SimulationReport, simulate
from schemas.policy import PolicyFileError, UnknownPolicyVersion, known_versions, load_policy, load_policy_data
from schemas.policy import load_policy_text as parse_policy_text

router = APIRouter(tags=["policy"])

# Names the candidate in refusals; not a file anyone reads, and not a programme file name, so the
# version inside is not tied to it.
_CANDIDATE = Path("candidate")


@router.get(
    "/policies",
    response_model=list[PolicyVersion],
    operation_id="listPolicyVersions",
    summary="The policy versions on file, with the day each takes effect",
    responses={**example_response(examples.POLICY_VERSIONS, "the versions"), **problem_responses(401)},
)
async def versions(permit: Annotated[Permit, permitted("listPolicyVersions")]) -> list[PolicyVersion]:
    return [
        PolicyVersion(version=p.version, effective_from=p.effective_from, description=p.description)
        for p in (load_policy(v) for v in known_versions())
    ]


@router.post(
    "/policies/dry-run",
    response_model=SimulationReport,
    operation_id="dryRunPolicy",
    summary="Evaluate every open exchange under a candidate policy; changes nothing",
    responses={
        **example_response(examples.DRY_RUN, "what would change, per exchange and per partnership"),
        **problem_responses(401, 403, 409, 413, 415, 422, 503),
    },
)
async def dry_run(
    api: Engine,
    permit: Annotated[Permit, permitted("dryRunPolicy")],
    body: Annotated[PolicyDryRunInput, Depends(StrictBody(PolicyDryRunInput, examples.POLICY_DRY_RUN))],
) -> SimulationReport:
    try:
        if body.toml is not None:
            candidate = parse_policy_text(body.toml, _CANDIDATE.with_suffix(".toml"))
        else:
            assert body.policy is not None, "the model requires one of them"
            candidate = load_policy_data(body.policy, _CANDIDATE.with_suffix(".json"))
    except PolicyFileError as error:
        prefix = "toml" if body.toml is not None else "policy"
        raise invalid([(f"{prefix}.{p.field}", p.rule) for p in error.problems]) from None
    async with api.pool.acquire() as conn:
        try:
            cases = await load_open_cases(conn)
        except UnknownPolicyVersion as error:
            raise ProblemError(409, "Unknown policy version", f"an open exchange runs under {error}") from None
    # Screening and pricing every open exchange is CPU work: off the event loop, so other requests go on.
    return await asyncio.to_thread(simulate, cases, candidate)
