"""Properties of request validation (hypothesis), on the real app and champion.

Any invalid body is a 422 whose detail names the offending field; any valid body is a
200 whose every output is in range. Non-finite numbers go over the wire as the JSON
extensions ``NaN``/``Infinity`` (Python's json, and so the API's parser, read them).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.schema import PRODUCT_CATEGORIES
from creditrisk.scoring.decide import load_policy
from serving.schemas import FEATURE_RANGES
from tests.serving.conftest import HEADERS, World

pytestmark = pytest.mark.slow

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
KNOWN_FIELDS = {"customer_id", "features", "amount", "product_category"}
POLICY = load_policy()

wrong_types = st.one_of(st.text(max_size=8), st.booleans(),
                        st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])


def valid_features() -> st.SearchStrategy[dict[str, float]]:
    return st.fixed_dictionaries({
        name: st.one_of(st.floats(lo, hi, allow_nan=False),
                        st.integers(math.ceil(lo), math.floor(hi)))
        for name, (lo, hi) in FEATURE_RANGES.items()
    })


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    # json.dumps writes nan/inf as NaN/Infinity, which the API's JSON parser accepts
    return client.post(path, content=json.dumps(body),
                       headers={**HEADERS, "Content-Type": "application/json"})


def fields(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {d["field"]: d["error"] for d in response.json()["detail"]}


@PROPERTY
@given(amount=st.one_of(st.floats(max_value=0, exclude_max=True, allow_nan=False),
                        st.floats(min_value=1e9, exclude_min=True), non_finite, wrong_types,
                        st.integers(max_value=-1), st.integers(min_value=10**9 + 1)))
def test_an_out_of_range_non_finite_or_wrong_typed_amount_is_422_on_amount(
    client: TestClient, amount: Any
) -> None:
    assert "body.amount" in fields(post(client, "/predict",
                                        {"customer_id": "C1", "amount": amount}))


@PROPERTY
@given(features=valid_features(), name=st.sampled_from(FEATURE_NAMES), data=st.data())
def test_a_bad_feature_value_is_422_naming_that_feature(
    client: TestClient, features: dict[str, float], name: str, data: st.DataObject
) -> None:
    lo, hi = FEATURE_RANGES[name]
    bad = data.draw(st.one_of(
        st.floats(max_value=lo, exclude_max=True, allow_nan=False),
        st.floats(min_value=hi, exclude_min=True), non_finite, wrong_types,
        st.none(),
    ))
    got = fields(post(client, "/predict", {"features": {**features, name: bad}}))
    # per-value errors sit on body.features.<name>; the whole-dict checks (a non-finite
    # value) on body.features, naming the feature
    assert (f"body.features.{name}" in got
            or name in got.get("body.features", "")), got


@PROPERTY
@given(features=valid_features(),
       extra=st.from_regex(r"[a-z][a-z_]{0,20}", fullmatch=True).filter(
           lambda k: k not in FEATURE_RANGES))
def test_an_unknown_or_missing_feature_is_422_naming_it(
    client: TestClient, features: dict[str, float], extra: str
) -> None:
    got = fields(post(client, "/predict", {"features": {**features, extra: 1.0}}))
    assert extra in got["body.features"]
    missing = sorted(features)[len(extra) % len(features)]
    got = fields(post(client, "/predict", {"features": {
        k: v for k, v in features.items() if k != missing}}))
    assert missing in got["body.features"]


@PROPERTY
@given(key=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True).filter(
           lambda k: k not in KNOWN_FIELDS),
       value=st.one_of(st.integers(), st.text(max_size=5), st.none()))
def test_an_unknown_field_is_422_naming_it(client: TestClient, key: str, value: Any) -> None:
    assert f"body.{key}" in fields(post(client, "/predict", {"customer_id": "C1", key: value}))


@PROPERTY
@given(customer_id=st.one_of(
    st.from_regex(r"[A-Za-z0-9_\-]{65,200}", fullmatch=True),
    st.text(min_size=1, max_size=64).filter(
        lambda s: any(not (c.isascii() and (c.isalnum() or c in "_-")) for c in s)),
    st.just(""), st.integers(), st.booleans()))
def test_an_over_long_malformed_or_wrong_typed_customer_id_is_422(
    client: TestClient, customer_id: Any
) -> None:
    assert "body.customer_id" in fields(post(client, "/predict", {"customer_id": customer_id}))


@PROPERTY
@given(n=st.integers(2, 6), data=st.data())
def test_a_bad_item_in_a_batch_is_named_by_its_index(
    client: TestClient, n: int, data: st.DataObject
) -> None:
    bad = data.draw(st.integers(0, n - 1))
    items: list[dict[str, Any]] = [{"customer_id": f"C{i}"} for i in range(n)]
    items[bad]["amount"] = data.draw(st.one_of(non_finite, st.floats(max_value=-1e-9)))
    assert f"body.items.{bad}.amount" in fields(post(client, "/predict/batch",
                                                     {"items": items}))


@PROPERTY
@given(features=valid_features(),
       amount=st.one_of(st.none(), st.floats(0, 1e9), st.integers(0, 10**9)),
       category=st.one_of(st.none(), st.sampled_from(PRODUCT_CATEGORIES)))
def test_any_valid_body_is_200_with_every_output_in_range(
    client: TestClient, world: World, features: dict[str, float], amount: Any,
    category: str | None,
) -> None:
    body: dict[str, Any] = {"features": features}
    if amount is not None:
        body["amount"] = amount
    if category is not None:
        body["product_category"] = category
    r = post(client, "/predict", body)
    assert r.status_code == 200, r.text
    out = r.json()
    dormant = features["purchase_recency_days"] > POLICY["population"]["lookback_days"]
    if dormant:  # outside the scoring population: the policy's answer, no PD, no score
        assert out["risk_band"] == "DORMANT"
        assert out["probability_of_default"] is None and out["credit_score"] is None
        assert out["decision"] == POLICY["dormant"]["decision"]
        assert out["recommended_limit"] == POLICY["dormant"]["limit"]
        return
    assert 0.0 <= out["probability_of_default"] <= 1.0
    assert POLICY["score"]["min"] <= out["credit_score"] <= POLICY["score"]["max"]
    assert out["decision"] in ("APPROVE", "REVIEW", "DECLINE")
    assert 0.0 <= out["recommended_limit"] <= POLICY["limit"]["max_limit"]
    assert out["recommended_term_days"] >= 0
    if out["decision"] == "DECLINE":
        assert out["recommended_limit"] == 0 and out["recommended_term_days"] == 0
    if amount is not None and out["decision"] == "APPROVE":
        assert amount <= out["recommended_limit"]  # a basket over the line is reviewed
    assert out["model_version"] == world.version and out["features_as_of"] is None
    assert out["thin_file"] is False
    assert all(math.isfinite(c["contribution"]) for c in out["reason_codes"]
               if c["contribution"] is not None)
