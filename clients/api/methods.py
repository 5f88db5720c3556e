"""The methods a path takes, for the `Allow` header of a 405 (RFC 9110 section 15.5.6).

Starlette answers 405 with the methods of the first route whose path matched, but FastAPI makes one route
per operation: `DELETE /exchanges` named only POST although GET /exchanges exists too (found by the
OpenAPI tests, issue 16). The OpenAPI document lists every operation of a path, so it is asked instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PARAMETER = re.compile(r"\\\{[^}]+\\\}")


def allowed_methods(document: Mapping[str, Any], path: str) -> str | None:
    """`GET, POST`: the documented methods of the path template matching `path`; None for an undocumented path."""
    methods: set[str] = set()
    for template, item in document.get("paths", {}).items():
        if re.fullmatch(_PARAMETER.sub("[^/]+", re.escape(template)), path):
            methods |= {method.upper() for method in item}
    return ", ".join(sorted(methods)) or None
