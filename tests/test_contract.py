"""The exported JSON Schemas match the pydantic models, so other services cannot code against a stale contract."""

from __future__ import annotations

from schemas.export import JSON_DIR, rendered


def test_exported_json_schemas_match_the_models() -> None:
    """Every contract model's schema file exists and equals what the model renders now."""
    stale = [
        name
        for name, text in rendered().items()
        if not (JSON_DIR / name).exists() or (JSON_DIR / name).read_text() != text
    ]
    assert not stale, f"regenerate with `python -m schemas.export`: {stale}"


def test_no_orphan_schema_files() -> None:
    """No file in schemas/json/ describes a model that no longer exists."""
    assert {p.name for p in JSON_DIR.glob("*.json")} == set(rendered())


def test_every_ledger_error_code_is_a_declared_error_type() -> None:
    """Each ledger refusal's code appears in ErrorType, so workflows treat it as non-retryable."""
    import inspect

    from ledger import errors
    from schemas.errors import ErrorType

    codes = {
        cls.code
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.LedgerError) and cls is not errors.LedgerError
    }
    assert codes <= {e.value for e in ErrorType}, codes - {e.value for e in ErrorType}
