"""What a browser and a client written from the brief meet: `/`, examples, `customers`."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.serving.conftest import HEADERS, World, stored_features
from tests.serving.test_lifecycle import customers


def test_the_root_redirects_a_browser_to_the_docs(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/docs"
    page = client.get("/")  # followed: the Swagger UI itself, no key needed
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_predict_and_batch_carry_openapi_examples_that_the_api_accepts(
    client: TestClient,
) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("PredictRequest", "BatchRequest"):
        examples = schemas[name].get("examples")
        assert examples, f"{name} has no example"
    for body in schemas["PredictRequest"]["examples"]:
        r = client.post("/predict", json=body, headers=HEADERS)
        assert r.status_code == 200, (body, r.text)
    for body in schemas["BatchRequest"]["examples"]:
        r = client.post("/predict/batch", json=body, headers=HEADERS)
        assert r.status_code == 200, (body, r.text)
        assert all(x["ok"] for x in r.json()["results"])


def test_batch_accepts_customers_as_another_name_of_items(
    client: TestClient, world: World
) -> None:
    ids = customers(world, 3)
    by_items = client.post("/predict/batch", json={"items": [{"customer_id": c} for c in ids]},
                           headers=HEADERS)
    by_customers = client.post("/predict/batch",
                               json={"customers": [{"customer_id": c} for c in ids]},
                               headers=HEADERS)
    assert by_items.status_code == by_customers.status_code == 200, by_customers.text

    def pds(r: object) -> list[float]:
        return [x["result"]["probability_of_default"] for x in r.json()["results"]]  # type: ignore[attr-defined]

    assert pds(by_customers) == pds(by_items)
    assert stored_features(world, ids[0])  # the ids are real, scored customers
    # both names at once is ambiguous: refused, naming the field
    both = client.post("/predict/batch", json={"items": [{"customer_id": ids[0]}],
                                               "customers": [{"customer_id": ids[1]}]},
                       headers=HEADERS)
    assert both.status_code == 422
    assert any("customers" in e["field"] or "items" in e["field"]
               for e in both.json()["detail"]), both.json()
