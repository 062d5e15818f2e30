"""The band backtest: realized bad rate of matured loans vs mean PD at issue, Jeffreys."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditrisk import alerts
from creditrisk.evaluation.backtest import band_backtest


def _perf(band: str, n: int, bad: int, pd_: float, matured: bool = True) -> pd.DataFrame:
    return pd.DataFrame({"risk_band": band, "matured": matured, "bad": [True] * bad + [False] *
                         (n - bad), "pd_at_issue": pd_, "exploration": False,
                         "model_version": "3"})


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
    assert alert.kind == "backtest_band" and "v3 D: 20/200 bad" in alert.text


def test_repayment_label_uses_matured_loans_issued_in_the_window_only() -> None:
    import datetime as dt

    from creditrisk.features.labels import STRATEGIES, get_strategy

    t = dt.date(2019, 1, 10)
    perf = pd.DataFrame({
        "customer_id": ["C1", "C1", "C2", "C3", "C4", "C5"],
        "issue_date": [t, t + dt.timedelta(1), t + dt.timedelta(2), t - dt.timedelta(1),
                       t, t + dt.timedelta(3)],
        "matured": [True, True, True, True, False, True],
        "bad": [False, True, False, True, True, True],
    })
    assert "repayment" in STRATEGIES
    res = get_strategy("repayment").label(perf, pd.Index(["C1", "C2", "C3", "C4", "C5"]), t, 3)
    # C3 borrowed before the window, C4's loan has not matured, C5's is after the window
    assert res.frame["is_high_risk"].to_dict() == {"C1": True, "C2": False}
    assert res.source_start == t and res.frame["window_end"].iloc[0] == "2019-01-12"


def test_the_model_card_names_the_label_strategy_used() -> None:
    from creditrisk.evaluation.model_card import model_card

    card = model_card({"model_name": "m", "version": 3,
                       "data": {"label_strategy": "repayment", "matured_loans": 412}})
    assert "**Label strategy used:** `repayment` (412 matured loans" in card
    assert "rejected customers have none" in card
    proxy = model_card({"model_name": "m", "version": 3, "data": {
        "label_strategy": "forward_window", "matured_loans": 3}})
    assert "`forward_window` (3 matured" in proxy and "behavioural proxy" in proxy


def test_the_backtest_plots_are_written_with_rows_and_without(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from creditrisk.evaluation.plots import backtest_plots

    table = band_backtest(pd.concat([_perf("A", 100, 5, 0.05), _perf("B", 50, 10, 0.1)]))
    vintages = pd.DataFrame({"issue_month": [dt.date(2019, 1, 1)] * 2, "months_on_book": [1, 2],
                             "loans": [20, 20], "bad": [1, 3],
                             "cumulative_bad_rate": [0.05, 0.15]})
    written = backtest_plots(table, vintages, tmp_path / "full")
    assert [p.name for p in written] == ["backtest_bands.png", "vintages.png"]
    empty = backtest_plots(table.iloc[:0], vintages.iloc[:0], tmp_path / "empty")
    for path in written + empty:
        assert path.read_bytes().startswith(b"\x89PNG"), path
    # the plots differ with their data (a plot that ignored it would not)
    assert written[0].read_bytes() != empty[0].read_bytes()
    assert written[1].read_bytes() != empty[1].read_bytes()


def test_the_backtest_metrics_count_bands_within_and_outside() -> None:
    from creditrisk.evaluation.backtest import backtest_metrics

    bands = [{"within_interval": True}, {"within_interval": False}, {"within_interval": None}]
    assert backtest_metrics({"bands": bands, "matured": 40, "loans": 55}) == {
        "bands": 3.0, "bands_within": 1.0, "bands_outside": 1.0, "matured_loans": 40.0,
        "loans": 55.0}
