"""`/docs` works with no network: Swagger UI's page, script, style and icon all come from the API itself."""

from __future__ import annotations

import re
from importlib.resources import files
from urllib.parse import urljoin, urlsplit

import httpx

EXPECTED_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".png": {"image/png"},
    ".json": {"application/json"},
}


async def test_the_docs_page_loads_everything_from_this_host(api: httpx.AsyncClient) -> None:
    """Every src/href (and the OpenAPI url) of /docs is same-host, and each answers 200 with its content type."""
    page = await api.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: '([^']+)'", html)
    assert len(referenced) >= 4, f"stylesheet, icon, script and the OpenAPI document: {referenced}"
    for reference in referenced:
        absolute = urlsplit(urljoin("http://api/docs", reference))
        assert (absolute.scheme, absolute.netloc) == ("http", "api"), f"{reference} leaves this host"
        asset = await api.get(absolute.path)
        assert asset.status_code == 200, reference
        suffix = "." + absolute.path.rpartition(".")[2]
        content_type = asset.headers["content-type"].partition(";")[0]
        assert content_type in EXPECTED_TYPES[suffix], f"{reference}: {content_type}"
    # Swagger UI's default would fetch a validity badge from validator.swagger.io.
    assert '"validatorUrl": null' in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_swagger_ui_ships_in_the_package_with_its_licence() -> None:
    """The assets are package data (pyproject.toml), with Swagger UI's Apache-2.0 licence and notice beside them."""
    folder = files("clients.api") / "static" / "swagger-ui"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE"):
        assert (folder / name).is_file(), name
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "SwaggerUIBundle" in (folder / "swagger-ui-bundle.js").read_text()[:2000]
