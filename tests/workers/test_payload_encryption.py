"""The payload codec and its keys (issue 16, item 1): the format other SDKs must reproduce, rotation, refusals."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

from schemas.codec import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    NONCE_BYTES,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeys,
)
from schemas.converter import DATA_CONVERTER, data_converter
from schemas.exchange import ApplicationInput
from tests.factories import application
from tests.workers.test_check_config import check
from workers.payload_keys import KEY_FILE, stack_payload_keys
from workers.runtime import RuntimeInfo, resolve_temporal_connection, write_runtime
from workers.settings import Settings, SettingsError
from workers.temporal_config import load_connection

OLD = bytes(range(32))
NEW = bytes(range(100, 132))
SECRET_TEXT = "Zofia Qwertyuiop"


@pytest.fixture(autouse=True)
def no_suite_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the suite's own key (tests/conftest.py), which pydantic-settings would read besides the mapping."""
    monkeypatch.delenv("CX_PAYLOAD_KEYS", raising=False)
    monkeypatch.delenv("CX_PAYLOAD_KEY_ID", raising=False)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def original() -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "messageType": b"x"}, data=f'"{SECRET_TEXT}"'.encode())


async def test_the_format_is_aes_gcm_over_the_serialized_payload_with_the_key_id_as_associated_data() -> None:
    """What docs/contract.md promises other SDKs: metadata, nonce || ciphertext+tag, AAD = key id; decrypted by
    hand with nothing but `cryptography`, the original payload comes back, metadata included."""
    [sealed] = await EncryptionCodec(PayloadKeys({"k1": OLD}, "k1")).encode([original()])
    assert dict(sealed.metadata) == {"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: b"k1"}
    assert SECRET_TEXT.encode() not in sealed.data
    nonce, ciphertext = sealed.data[:NONCE_BYTES], sealed.data[NONCE_BYTES:]
    assert len(ciphertext) == len(original().SerializeToString()) + 16  # the GCM tag
    assert Payload.FromString(AESGCM(OLD).decrypt(nonce, ciphertext, b"k1")) == original()


async def test_every_payload_gets_its_own_nonce_and_decodes_to_exactly_the_original() -> None:
    """Two encodings of one payload differ (random nonce); each decodes to the original, metadata and all."""
    codec = EncryptionCodec(PayloadKeys({"k1": OLD}, "k1"))
    first, second = await codec.encode([original(), original()])
    assert first.data[:NONCE_BYTES] != second.data[:NONCE_BYTES]
    assert await codec.decode([first, second]) == [original(), original()]


async def test_rotation_old_keys_decrypt_and_the_current_one_encrypts() -> None:
    """After rotation (k2 current, k1 still listed) a k1 payload decodes and new payloads are under k2; with k1
    retired it no longer decodes, and the error names the key id and the variable."""
    [under_old] = await EncryptionCodec(PayloadKeys({"k1": OLD}, "k1")).encode([original()])
    rotated = EncryptionCodec(PayloadKeys({"k1": OLD, "k2": NEW}, "k2"))
    assert await rotated.decode([under_old]) == [original()]
    [under_new] = await rotated.encode([original()])
    assert under_new.metadata[KEY_ID_METADATA] == b"k2"
    retired = EncryptionCodec(PayloadKeys({"k2": NEW}, "k2"))
    with pytest.raises(PayloadDecryptionError, match=r"key id 'k1'.*CX_PAYLOAD_KEYS"):
        await retired.decode([under_old])


async def test_a_relabelled_or_altered_payload_is_refused() -> None:
    """The key id is bound as associated data: the same ciphertext under another id of the same key, or one
    flipped bit, fails authentication."""
    keys = PayloadKeys({"k1": OLD, "k2": OLD}, "k1")
    codec = EncryptionCodec(keys)
    [sealed] = await codec.encode([original()])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"k2"}, data=sealed.data)
    flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    for bad in (relabelled, flipped):
        with pytest.raises(PayloadDecryptionError, match="fails authentication"):
            await codec.decode([bad])


async def test_a_plaintext_payload_passes_through_decode() -> None:
    """Histories recorded before encryption (tests/histories/) still decode: no encrypted encoding, no change."""
    converter = data_converter(PayloadKeys({"k1": OLD}, "k1"))
    app = application()
    plain = await DATA_CONVERTER.encode([app])
    assert await converter.decode(plain, [ApplicationInput]) == [app]
    sealed = await converter.encode([app])
    assert sealed[0].metadata["encoding"] == ENCRYPTED_ENCODING
    assert await converter.decode(sealed, [ApplicationInput]) == [app]


@pytest.mark.parametrize(
    ("variables", "named", "rule"),
    [
        ({"CX_PAYLOAD_KEYS": f"k1:{b64(OLD[:16])}"}, "CX_PAYLOAD_KEYS", "16 bytes; AES-256 needs 32"),
        ({"CX_PAYLOAD_KEYS": "k1:not base64!"}, "CX_PAYLOAD_KEYS", "not base64"),
        ({"CX_PAYLOAD_KEYS": f"k1:{b64(OLD)}", "CX_PAYLOAD_KEY_ID": "k9"}, "CX_PAYLOAD_KEY_ID='k9'", "no key of"),
        ({"CX_PAYLOAD_KEYS": f"k1:{b64(OLD)},k2:{b64(NEW)}"}, "CX_PAYLOAD_KEY_ID", "more than one key"),
        ({"CX_PAYLOAD_KEYS": json.dumps({"k 1": b64(OLD)})}, "CX_PAYLOAD_KEYS", "key id 'k 1'"),
        ({"CX_PAYLOAD_KEYS": '{"k1": "' + b64(OLD)}, "CX_PAYLOAD_KEYS", "not valid JSON"),
        ({"CX_PAYLOAD_KEY_ID": "k1"}, "CX_PAYLOAD_KEY_ID", "without CX_PAYLOAD_KEYS"),
        ({"CX_CODEC_CORS_ORIGIN": "https://ui.example.org/path"}, "CX_CODEC_CORS_ORIGIN", "must be an origin"),
    ],
)
def test_malformed_keys_are_refused_naming_the_variable_and_never_showing_a_key(
    variables: dict[str, str], named: str, rule: str
) -> None:
    """Each malformed configuration is one line naming the variable and the rule, with no key material in it."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(variables)
    message = str(refused.value)
    assert named in message, message
    assert rule in message, message
    for key in (OLD, NEW, OLD[:16]):
        assert b64(key) not in message


@pytest.mark.parametrize("form", ["json", "pairs"])
def test_both_forms_configure_the_same_keys_and_every_connection_encrypts(form: str) -> None:
    """JSON and `id:base64,...` give the same keys; the connection every process builds carries the codec."""
    raw = json.dumps({"k1": b64(OLD), "k2": b64(NEW)}) if form == "json" else f"k1:{b64(OLD)}, k2:{b64(NEW)}"
    settings = Settings.from_env({"CX_PAYLOAD_KEYS": raw, "CX_PAYLOAD_KEY_ID": "k2", "TEMPORAL_ADDRESS": "t:7233"})
    assert settings.payload_keyring == PayloadKeys({"k1": OLD, "k2": NEW}, "k2")
    assert b64(OLD) not in repr(settings) + repr(settings.payload_keyring)
    codec = load_connection(settings).data_converter.payload_codec
    assert isinstance(codec, EncryptionCodec)
    assert codec.current_key_id == "k2"
    unkeyed = Settings.from_env({"TEMPORAL_ADDRESS": "t:7233"})
    assert load_connection(unkeyed).data_converter.payload_codec is None


def test_the_local_stack_keeps_one_key_in_its_state_dir(tmp_path: Path) -> None:
    """`make run` generates its key once (mode 0600) and every later run and `cx` command reads the same one;
    a configured CX_PAYLOAD_KEYS wins over it."""
    settings = Settings.from_env({"CX_STATE_DIR": str(tmp_path)})
    assert stack_payload_keys(settings) is None
    created = stack_payload_keys(settings, create=True)
    assert created is not None
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert stack_payload_keys(settings) == created
    assert stack_payload_keys(settings, create=True) == created
    configured = Settings.from_env({"CX_STATE_DIR": str(tmp_path), "CX_PAYLOAD_KEYS": f"k1:{b64(OLD)}"})
    assert stack_payload_keys(configured) == PayloadKeys({"k1": OLD}, "k1")


def test_cx_commands_that_find_the_local_stack_use_its_key(tmp_path: Path) -> None:
    """A `cx` command without TEMPORAL_ADDRESS reaches the running `make run` (runtime.json) with the stack's
    key from the same directory; given TEMPORAL_ADDRESS, the same command ignores that file."""
    settings = Settings.from_env({"CX_STATE_DIR": str(tmp_path)})
    keys = stack_payload_keys(settings, create=True)
    assert keys is not None
    write_runtime(settings, RuntimeInfo("postgresql://x@127.0.0.1/x", "127.0.0.1:7233", None, os.getpid()))
    codec = resolve_temporal_connection(settings).data_converter.payload_codec
    assert isinstance(codec, EncryptionCodec)
    assert codec.current_key_id == keys.current
    elsewhere = Settings.from_env({"CX_STATE_DIR": str(tmp_path), "TEMPORAL_ADDRESS": "temporal:7233"})
    assert resolve_temporal_connection(elsewhere).data_converter.payload_codec is None


def test_check_config_says_whether_payloads_are_encrypted_and_never_shows_a_key(tmp_path: Path) -> None:
    """`cx worker --check-config` prints the current key id and how many keys decrypt, or says `plaintext`."""
    base = {
        "DATABASE_URL": "postgresql://cx@db.invalid:5432/cx",
        "TEMPORAL_ADDRESS": "temporal.invalid:7233",
        "CX_FINANCE_WEBHOOK_URL": "https://finance.invalid/orders",
    }
    keyed = check("worker", tmp_path, **base, CX_PAYLOAD_KEYS=f"k1:{b64(OLD)},k2:{b64(NEW)}", CX_PAYLOAD_KEY_ID="k2")
    assert keyed.returncode == 0, keyed.stderr
    assert "payloads   encrypted, AES-256-GCM, key k2 (2 known)" in keyed.stdout
    assert b64(OLD) not in keyed.stdout + keyed.stderr
    assert b64(NEW) not in keyed.stdout + keyed.stderr
    plain = check("worker", tmp_path, **base)
    assert "payloads   plaintext" in plain.stdout, plain.stdout + plain.stderr
