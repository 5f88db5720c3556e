"""The local stack's payload key: `make run` encrypts like production, with a key kept in its state directory.

Issue 16, item 1 (docs/adr/0022-payload-encryption.md). A deployment configures CX_PAYLOAD_KEYS. When it is
unset, `make run` (`cx dev up`) does not fall back to plaintext: it generates a key the first time and keeps
it in `<CX_STATE_DIR>/payload-keys.json` (mode 0600), next to the dev server's SQLite file whose histories
it encrypted, so a second `make run` still reads them and `make clean` forgets both together. `cx` commands
in another terminal that find the stack through `<CX_STATE_DIR>/runtime.json` (workers/runtime.py) take the
same key from the same directory. A process given TEMPORAL_ADDRESS never reads this file: a server of
someone else's gets the configured keys or none.
"""

from __future__ import annotations

import os

from ledger import persons
from ledger.persons import PersonKeyring
from schemas.codec import PayloadKeys, parse_payload_keys
from workers.settings import Settings, SettingsError

KEY_FILE = "payload-keys.json"
LOCAL_KEY_ID = "local-1"


def stack_payload_keys(settings: Settings, *, create: bool = False) -> PayloadKeys | None:
    """CX_PAYLOAD_KEYS, else the local stack's key file (generated first when `create`), else None."""
    configured = settings.payload_keyring
    if configured is not None:
        return configured
    path = settings.state_dir / KEY_FILE
    if not path.exists():
        if not create:
            return None
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        keys = PayloadKeys.generate(LOCAL_KEY_ID)
        # Created with 0600 from the start: the key is never readable by others, not even for a moment.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(keys.to_config())
        return keys
    try:
        return parse_payload_keys(path.read_text(), None)
    except ValueError as error:
        raise SettingsError(f"{path}: {error} (delete it with `make clean` to start over)") from None


def install_person_keys(settings: Settings, *, create: bool = False) -> None:
    """The process's person keyring (ledger/persons.py), derived from the same payload keys: the programme keeps
    one set of secrets, rotated together (docs/adr/0025-erasure-by-crypto-shredding.md)."""
    keys = stack_payload_keys(settings, create=create)
    persons.install(None if keys is None else PersonKeyring.derive(keys.keys, keys.current))
