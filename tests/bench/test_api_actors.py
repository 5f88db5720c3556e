"""The scale-out bench's HTTP actors (bench/api_actors.py) against two real HTTP servers: requests alternate
between the APIs, a request lost in transit is sent again with the same Idempotency-Key, a workflow's refusal
comes back as the Temporal client's DecisionRefused, anything else unexpected fails the run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date

import pytest

from bench import api_actors
from bench.api_actors import ApiActors, ApiRequestFailed, api_tokens
from bench.drivers import bench_application
from clients.client import DecisionRefused

Script = list[tuple[int, dict[str, str], dict[str, object]]]
Seen = list[tuple[str, str, str]]
Apis = tuple[ApiActors, Script, Seen]


@dataclass
class ScriptedApi:
    """A tiny HTTP server answering each POST with the next (status, headers, body) of a shared script."""

    name: str
    script: Script
    seen: Seen  # (server name, path, Idempotency-Key), shared by both servers
    server: asyncio.Server | None = field(default=None)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:]) if k}
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.seen.append((self.name, head[0].split(" ")[1], headers.get("idempotency-key", "")))
        status, extra, body = self.script.pop(0)
        payload = json.dumps(body).encode()
        lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        writer.close()


@pytest.fixture
async def apis() -> AsyncIterator[Apis]:
    script: Script = []
    seen: Seen = []
    servers = [ScriptedApi(name, script, seen) for name in ("one", "two")]
    for s in servers:
        s.server = await asyncio.start_server(s.serve, "127.0.0.1", 0)
    app = bench_application("t-0001", "epix", date(2026, 12, 1))
    actors = ApiActors([s.url for s in servers], api_tokens(["epix-reviewer-1"], [app], ["epix"]), {"t-0001": app})
    try:
        yield actors, script, seen
    finally:
        await actors.close()
        for s in servers:
            assert s.server is not None
            s.server.close()
            await s.server.wait_closed()


async def test_requests_alternate_and_a_lost_one_is_sent_again_with_the_same_key(
    apis: Apis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """504 then 200: the second send goes to the other API with the same key; the next request has a new key."""
    actors, script, seen = apis
    monkeypatch.setattr(api_actors, "TRANSIENT_PAUSE_S", 0.0)
    script += [(504, {}, {"detail": "engine timeout"}), (200, {}, {"stage": "AGREEMENT"}), (200, {}, {})]
    match = {"actor_id": "host-contact", "side": "host"}
    assert await actors.decide("t-0001", "confirm_match", match) == {"stage": "AGREEMENT"}
    await actors.decide("t-0001", "confirm_match", match)
    assert [name for name, _, _ in seen] == ["one", "two", "one"]
    assert seen[0][1] == "/exchanges/t-0001/updates/confirm_match"
    assert seen[0][2] == seen[1][2] != seen[2][2]
    assert actors.transient_retries == 1


async def test_a_workflow_refusal_is_decision_refused_with_its_type(apis: Apis) -> None:
    """409 naming `refusal` is what the recorder retries as "not yet"; it is not sent again here."""
    actors, script, seen = apis
    script.append((409, {}, {"detail": "not in AGREEMENT", "refusal": "WrongStage"}))
    with pytest.raises(DecisionRefused) as refused:
        await actors.decide("t-0001", "sign_commitment", {"actor_id": "s", "party": "host_organisation"})
    assert refused.value.refusal == "WrongStage"
    assert len(seen) == 1


async def test_a_key_in_flight_is_sent_again_and_a_forbidden_request_fails_the_run(
    apis: Apis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """409 with Retry-After and no refusal: the same request again; 403: the bench is broken, not slow."""
    actors, script, seen = apis
    monkeypatch.setattr(api_actors, "TRANSIENT_PAUSE_S", 0.0)
    script += [(409, {"Retry-After": "1"}, {"detail": "in flight"}), (202, {}, {}), (403, {}, {"detail": "no"})]
    await actors.confirm_payment("t-0001", {"payment_order_id": "po", "amount_cents": 1})
    assert seen[0][2] == seen[1][2]
    with pytest.raises(ApiRequestFailed, match="403"):
        await actors.start_exchange(bench_application("t-0001", "epix", date(2026, 12, 1)))
