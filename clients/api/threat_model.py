"""The threat model of docs/security.md in one page (issue 16, item 3 and 6; ADR 0023): what is worth
protecting, from whom, where trust changes hands, and which control stops what. Printed after the tables by
clients/api/security_matrix.py, so the generated document keeps it."""

_INTRODUCTION = """\
## Threat model

**Assets.** Public money and its trail (the double-entry ledger, payment orders, the audit trail); the
decisions that move it (reviews, overrides, signatures, report validations); personal data of travellers,
applicants and reviewers (names, organisations, contact details, report evidence); the credentials that
stand for people and systems (bearer tokens, session cookies, the webhook secret, database and Temporal
credentials).

**Actors.** Programme staff (officers, ops), reviewers, applicants and the people of partner organisations,
partner systems (a partnership's CRM, finance) acting with their own tokens; and, against them, an outsider
on the network, a holder of a stolen or leaked token, a legitimate user reaching beyond their role or
party (a reviewer with a conflict, an applicant of another organisation), and a careless operator (a token
in a log, a password in a manifest).

**Trust boundaries.** (1) The network to the API: only the bearer token (or the web session opened with one)
says who is calling; everything in a request is untrusted input. (2) The organisation's identity provider to
the API: we trust its signature, issuer and audience, and the role and party claims it issues. (3) The API to
Temporal and Postgres: internal, authenticated by their own credentials; the API only ever acts as the
caller's principal. (4) The engine to partners' webhooks and mail: signed (HMAC) deliveries.

"""

CONTROLS: tuple[tuple[str, str, str], ...] = (
    (
        "guessing a token",
        "static tokens of 32+ varied characters (a 16-letter or one-letter token is refused at start); "
        "after `CX_API_AUTH_FAILURES` wrong tokens an address gets 429 before its token is looked at, "
        "shared by every API process",
        "clients/api/static_tokens.py, rate_limits.py",
    ),
    (
        "a leaked or departed person's token",
        "`expires` on static tokens; `CX_API_TOKENS_FILE` re-read within seconds, so a token is revoked "
        "without a restart (its web sessions end with it); OIDC tokens expire within minutes and are "
        "revoked at the identity provider",
        "static_tokens.py, web/session.py",
    ),
    (
        "forged OIDC tokens",
        "RS256/ES256 only, the algorithm taken from the key's type (no `none`, no HS256 keyed with a "
        "public key), issuer, audience, `exp`/`nbf`/`iat` checked with small leeway; keys only from the "
        "issuer's JWKS, refetched on rotation at most once per interval",
        "clients/api/oidc.py",
    ),
    (
        "learning which exchanges exist",
        "401 before any lookup without a valid token; 404, identical to an unknown id, on an exchange the"
        " caller may not read",
        "guards.py, context.py",
    ),
    (
        "acting beyond one's role or party",
        "the role table of this document, enforced per request; actor fields must be the caller; a "
        "party's act only from that party",
        "access.py, context.py",
    ),
    (
        "a runaway script or a stolen token writing in bulk",
        "`CX_API_WRITE_RATE` writes a minute per principal, 429 with `Retry-After`; Idempotency-Key "
        "applies a retried write once",
        "rate_limits.py, idempotency.py",
    ),
    (
        "tokens read on the wire",
        "the API listens on 127.0.0.1 unless `--host` says otherwise and warns when it serves plain HTTP "
        "elsewhere; TLS terminates at a proxy in front (docs/operations.md); cookies are "
        "`Secure`/`__Host-` on TLS",
        "workers/api_identities.py",
    ),
    (
        "secrets in logs, errors and output",
        "tokens are never printed (refusals name the entry and subject); settings hold secrets as "
        "`SecretStr`; DSNs are printed without password; a test greps a running stack's output for the "
        "secrets it configured",
        "tests/workers/test_no_secrets_in_output.py",
    ),
    (
        "fixed passwords in deploy files",
        "a test scans deploy/ for literal passwords",
        "tests/test_deploy_secrets.py",
    ),
    (
        "forged browser forms",
        "CSRF token per session, SameSite cookies, a CSP allowing nothing from another host",
        "clients/web/",
    ),
)

_CLOSING = """\
Out of scope here: payload encryption and erasure of personal data (docs/privacy.md), webhook replay
windows, SMTP TLS (issue 16, items 1, 2 and 5).
"""

THREAT_MODEL = "\n".join(
    [
        _INTRODUCTION.rstrip(),
        "",
        "| threat | control | where |",
        "|---|---|---|",
        *(f"| {threat} | {control} | {where} |" for threat, control, where in CONTROLS),
        "",
        _CLOSING.rstrip(),
        "",
    ]
)
