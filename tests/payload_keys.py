"""The test suite's payload key (issue 16, item 1): every server of the suite encrypts with it.

tests/conftest.py gives the session's Temporal servers TEST_DATA_CONVERTER and puts the key in the environment
as CX_PAYLOAD_KEYS, so every `cx` subprocess and worker process a test starts encrypts with it too.
"""

from __future__ import annotations

from schemas.codec import PayloadKeys
from schemas.converter import data_converter

# Fixed, so a history recorded by a test (tests/histories/) stays readable; never a deployment's key.
TEST_PAYLOAD_KEYS = PayloadKeys({"test-1": bytes(range(32))}, "test-1")
TEST_DATA_CONVERTER = data_converter(TEST_PAYLOAD_KEYS)
