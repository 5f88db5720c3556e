"""No token or secret in what the stack prints or logs (issue 16, item 6), and the API's listening checks.

`cx dev up` runs with a configured token table and webhook secret, is called with the right token and with a
wrong one, and is stopped; its output and its log file are then searched for every secret it was given.
`cx api --check-config` describes identities without a token, and warns about plain HTTP beyond loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.workers.test_make_run_stops import START_WITHIN_S, _leftovers, _lines_until, start_dev_stack
from workers.api_identities import plain_http_warning
from workers.dev_up import SHUTDOWN_LIMIT_S
from workers.devstack import free_port
from workers.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "Zq4-Wn8xKt1RmC6vLp0YsH3dBf7JgE5a"
WRONG_TOKEN = "Mx2_Pf9rVa5TnK1wQc7HzL4dYg0JsE8b"
WEBHOOK_SECRET = "whsec-Tn3Lq8Vx1Rk6Wp0Zc5Hs9Yd2Bf7Jg4Ea"
TOKENS = json.dumps({TOKEN: {"subject": "officer-secret-test", "role": "officer"}})


def _call(port: int, token: str) -> int:
    """The API's status for GET /exchanges with `token`, waiting (bounded) for it to listen."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return _status(port, token)
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the API did not listen on {port} within 30 s") from None
            time.sleep(0.2)


def _status(port: int, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/exchanges", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - an http:// URL built just above
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.timeout(START_WITHIN_S + SHUTDOWN_LIMIT_S + 60)
def test_make_run_prints_and_logs_no_token_or_secret(tmp_path: Path) -> None:
    """The configured token, the webhook secret and a wrong token sent to the API appear nowhere in the output
    or the log file of `cx dev up`, though both calls were answered (200 and 401)."""
    state_dir = tmp_path / "state"
    port = free_port()
    stack = start_dev_stack(state_dir, port, CX_API_TOKENS=TOKENS, CX_WEBHOOK_SECRET=WEBHOOK_SECRET)
    try:
        lines = _lines_until(stack, "Worker running")
        assert _call(port, TOKEN) == 200
        assert _call(port, WRONG_TOKEN) == 401
        stack.send_signal(signal.SIGTERM)
        rest, _ = stack.communicate(timeout=SHUTDOWN_LIMIT_S + 15)
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
    output = "".join(lines) + rest
    logs = "".join(path.read_text(errors="replace") for path in state_dir.rglob("*.log"))
    assert "Worker running" in output
    assert logs, "the stack wrote its log"
    for secret in (TOKEN, WRONG_TOKEN, WEBHOOK_SECRET):
        assert secret not in output, "a secret in the output"
        assert secret not in logs, "a secret in the log"
    assert _leftovers(state_dir) == []


def test_check_config_describes_identities_without_tokens_and_warns_on_plain_http() -> None:
    """`cx api --check-config` counts tokens and names the OIDC issuer but prints no token; on 0.0.0.0 it warns
    that the API serves plain HTTP beyond this machine, on 127.0.0.1 it does not."""
    environment = {
        **os.environ,
        "CX_API_TOKENS": TOKENS,
        "DATABASE_URL": "postgresql://cx:db-password-x@127.0.0.1:5432/cx",
        "TEMPORAL_ADDRESS": "127.0.0.1:7233",
        "CX_OIDC_ISSUER": "https://login.example.org/realms/cx",
        "CX_OIDC_AUDIENCE": "clusterxchange-api",
    }
    for host, warned in (("0.0.0.0", True), ("127.0.0.1", False)):  # noqa: S104 - the case under test
        checked = subprocess.run(
            [str(ROOT / ".venv/bin/cx"), "api", "--check-config", "--host", host],
            cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "tokens     1 from CX_API_TOKENS (officer)" in checked.stdout, checked.stdout
        assert "https://login.example.org/realms/cx" in checked.stdout
        assert ("plain HTTP" in checked.stdout) is warned, checked.stdout
        for secret in (TOKEN, "db-password-x"):
            assert secret not in checked.stdout + checked.stderr


def test_plain_http_warning_only_beyond_loopback() -> None:
    """Loopback addresses and names listen only here; any other interface or name gets the warning."""
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert plain_http_warning(host) is None, host
    for host in ("0.0.0.0", "::", "10.0.0.5", "api.example.org"):  # noqa: S104 - the cases under test
        warning = plain_http_warning(host)
        assert warning is not None, host
        assert "TLS" in warning


def test_one_token_source_and_a_whole_oidc_configuration() -> None:
    """CX_API_TOKENS with CX_API_TOKENS_FILE, or an issuer without an audience, is refused naming both."""
    with pytest.raises(SettingsError, match="CX_API_TOKENS and CX_API_TOKENS_FILE"):
        Settings.from_env({"CX_API_TOKENS": TOKENS, "CX_API_TOKENS_FILE": "/run/secrets/tokens.json"})
    with pytest.raises(SettingsError, match="CX_OIDC_ISSUER and CX_OIDC_AUDIENCE"):
        Settings.from_env({"CX_OIDC_ISSUER": "https://login.example.org"})
    assert Settings.from_env({}).api_write_rate == 120


def test_check_config_reads_the_token_file_and_counts_expired_tokens(tmp_path: Path) -> None:
    """With CX_API_TOKENS_FILE, `cx api --check-config` loads the file, counts its expired tokens and prints none;
    a weak token in the file is refused naming the file's entry, not the token."""
    path = tmp_path / "tokens.json"
    expired = {"subject": "old-officer", "role": "officer", "expires": "2020-01-01T00:00:00Z"}
    path.write_text(json.dumps({TOKEN: {"subject": "anna", "role": "officer"}, WRONG_TOKEN: expired}))
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CX_API_TOKENS", "CX_OIDC"))},
        "CX_API_TOKENS_FILE": str(path),
        "DATABASE_URL": "postgresql://cx@127.0.0.1:5432/cx",
        "TEMPORAL_ADDRESS": "127.0.0.1:7233",
    }
    command = [str(ROOT / ".venv/bin/cx"), "api", "--check-config"]
    checked = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "tokens     2 from CX_API_TOKENS_FILE (re-read when it changes) (officer), 1 expired" in checked.stdout
    assert TOKEN not in checked.stdout + checked.stderr
    path.write_text(json.dumps({"a" * 16: {"subject": "weak", "role": "officer"}}))
    weak = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=60)
    assert weak.returncode == 2, weak.stdout + weak.stderr
    assert "entry #1 ('weak')" in weak.stderr
    assert "a" * 16 not in weak.stderr
