"""No fixed password in the deploy files (issue 16, item 6): every file under deploy/ is scanned for a literal
password, secret or token value; references (`${VAR}`, `{{ ... }}`, secretKeyRef, *_FILE paths) pass. Nothing is
skipped: a password added to deploy/ fails this test."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

# `POSTGRES_PASSWORD: cx`, `password=...`, `CX_WEBHOOK_SECRET="..."`, `api_key: ...` in YAML, env files, Dockerfiles.
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<name>[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|API_KEY|TOKENS?)[A-Z0-9_]*)
    ["']?\s*[:=]\s*
    (?P<value>"[^"]*"|'[^']*'|[^\s,}#]+)
    """
)
# A password inside a URL: postgresql://user:password@host
_URL_PASSWORD = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^:/\s@]+:(?P<value>[^@\s/]+)@")
_REFERENCE = re.compile(
    r"^(\$\{?[A-Za-z_]|\{\{|\{\s*(secretKeyRef|secretName|name|valueFrom)\b|<|valueFrom|secretKeyRef|/|\$\()"
)
# A template's placeholder (`change-me-...` in deploy/secrets/*.example) is not a password: nothing runs with it
# (the compose site reads the copies, never the examples; the API refuses a `change-me` token).
_PLACEHOLDER = re.compile(r"(?i)^[{\"' ]*(change-?me|<)")


def _is_reference(value: str) -> bool:
    if _PLACEHOLDER.match(value):
        return True
    value = value.strip("\"'")
    return value == "" or bool(_REFERENCE.match(value)) or value.lower() in {"null", "~", "true", "false"}


def literal_passwords(text: str) -> list[str]:
    """`name = value` findings (the value's length only, never the value) of literal secrets in `text`."""
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        for match in _ASSIGNMENT.finditer(line):
            name, value = match["name"], match["value"]
            if name.upper().endswith(("_FILE", "REF", "_NAME")) or _is_reference(value):
                continue
            found.append(f"line {number}: {name} has a literal value ({len(value.strip(chr(34) + chr(39)))} chars)")
        found += [
            f"line {number}: a password in a URL" for m in _URL_PASSWORD.finditer(line) if not _is_reference(m["value"])
        ]
    return found


def test_the_scanner_finds_planted_passwords_and_passes_references() -> None:
    """The scanner itself: literal passwords in YAML, env and URL form are found; references are not."""
    planted = "\n".join(
        [
            "environment: {POSTGRES_USER: cx, POSTGRES_PASSWORD: cx, POSTGRES_DB: cx}",
            "  CX_WEBHOOK_SECRET: 'hunter2'",
            "DATABASE_URL=postgresql://cx:s3cret@db:5432/cx",
            'CX_API_TOKENS={"Zq4-Wn8xKt1RmC6vLp0YsH3dBf7JgE5a": {"subject": "officer-1"}}',
        ]
    )
    assert len(literal_passwords(planted)) == 4, literal_passwords(planted)
    references = "\n".join(
        [
            "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it}",
            "POSTGRES_PASSWORD_FILE: /run/secrets/pg",
            "CX_API_TOKENS_FILE: /run/secrets/cx-tokens.json",
            "DATABASE_URL: postgresql://cx:${PGPASSWORD}@db/cx",
            "# POSTGRES_PASSWORD: example-in-a-comment",
            "password: {{ .Values.password }}",
            "valueFrom: {secretKeyRef: {name: cx-database, key: url}}",
            "secret: {secretName: cx-temporal-mtls, defaultMode: 0440}",
            'CX_API_TOKENS={"change-me-officer-token-0123456789": {"subject": "officer-1"}}',
            "DATABASE_URL=postgresql://cx:change-me-ledger-db-password@ledger-db:5432/cx",
        ]
    )
    assert literal_passwords(references) == []


def test_deploy_files_hold_no_literal_password() -> None:
    """Every text file under deploy/ (whatever another engineer adds there) is free of literal passwords."""
    findings = [
        f"{path.relative_to(ROOT)} {finding}"
        for path in sorted(DEPLOY.rglob("*"))
        if path.is_file()
        for finding in literal_passwords(path.read_text(errors="replace"))
    ]
    assert findings == [], "\n".join(findings)
