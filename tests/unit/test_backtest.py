"""The band backtest: realized bad rate of matured loans vs mean PD at issue, Jeffreys."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditrisk import alerts
from creditrisk.evaluation.backtest import band_backtest


def _perf(band: str, n: int, bad: int, pd_: float, matured: bool = True) -> pd.DataFrame:
    return pd.DataFrame({"risk_band": band, "matured": matured, "bad": [True] * bad + [False] *
                         (n - bad), "pd_at_issue": pd_, "exploration": False})


def test_a_band_whose_pd_matches_is_within_and_one_far_off_is_not() -> None:
    perf = pd.concat([_perf("A", 400, 20, 0.05), _perf("D", 200, 20, 0.40),
                      _perf("E", 50, 25, 0.5, matured=False)])
    table = band_backtest(perf).set_index("risk_band")
    assert list(table.index) == ["A", "D"]  # E has no matured loan
    assert table.loc["A", "loans"] == 400 and table.loc["A", "bad"] == 20
    assert table.loc["A", "interval_lo"] < 0.05 < table.loc["A", "interval_hi"]
    assert table.loc["A", "within_interval"] is True or table.loc["A", "within_interval"]
    assert not table.loc["D", "within_interval"]  # 10% realized against a 40% PD
    assert np.isclose(table.loc["D", "realized_bad_rate"], 0.1)


def test_the_alert_names_each_band_outside() -> None:
    table = band_backtest(_perf("D", 200, 20, 0.40))
    alert = alerts.backtest_out_of_interval(as_of="2019-03-01",
                                            bands=table.to_dict(orient="records"), run_id="r")
    assert alert.kind == "backtest_band" and "D: 20/200 bad" in alert.text
