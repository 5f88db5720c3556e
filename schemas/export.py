"""Export the contract's JSON Schemas to schemas/json/ (run: python -m schemas.export).

Other services, in any language, code against these files; tests/test_contract.py fails when they
drift from the models, so they are regenerated with the models, never edited by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.exchange import ApplicationInput, ExchangeOutcome, ExchangeStatus
from schemas.messages import SIGNALS, UPDATES

JSON_DIR = Path(__file__).parent / "json"

# file stem -> model: the workflow's start input, every update, signal and query, and its result.
CONTRACT: dict[str, type[BaseModel]] = {
    "start.ApplicationInput": ApplicationInput,
    **{f"update.{name}": model for name, model in UPDATES.items()},
    **{f"signal.{name}": model for name, model in SIGNALS.items()},
    "query.status": ExchangeStatus,
    "result.ExchangeOutcome": ExchangeOutcome,
}


def rendered() -> dict[str, str]:
    return {
        f"{stem}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for stem, model in CONTRACT.items()
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (JSON_DIR / name).write_text(text)
    print(f"wrote {len(CONTRACT)} schemas to {JSON_DIR}")


if __name__ == "__main__":
    main()
