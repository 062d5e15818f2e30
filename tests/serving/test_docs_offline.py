"""The API's own docs pages work with no internet: every asset is served by the API."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_pages_load_only_assets_the_api_serves(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets, page
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from another host"
            got = client.get(url)
            assert got.status_code == 200 and len(got.content) > 1000, url
        assert "openapi.json" in r.text


def test_docs_routes_stay_out_of_the_contract(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/docs", "/redoc")) for p in paths)
