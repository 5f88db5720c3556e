"""A stable digest of a decision's input, stored with the decision for provenance."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel


def input_digest(*parts: BaseModel | str) -> str:
    payload = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts]
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()
