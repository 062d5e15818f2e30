"""The generator closes the loop: checkouts the platform decides, loans, and repayments.

A simulated world (:func:`creditrisk.landing.simulate._simulate`: transactions plus each
customer's hidden trajectory, never written to a file) is replayed day by day against the
platform's own decisions:

* **Checkouts.** On day ``d``, each customer with a customer-initiated purchase that day
  checks out with pay-later with probability ``LoopPolicy.checkout_share``, unless a
  loan of theirs is still open. The basket is the day's purchases.
* **Decisions** come from the running champion: the newest ``risk_scores`` row of the
  customer on or before ``d`` (the nightly batch scores; ``decided_by`` says
  ``score:<date>``). APPROVE lends ``min(basket, recommended limit)``, rounded down to
  500 UGX, over the recommended term in ``LoopPolicy.installments`` installments;
  REVIEW and DECLINE lend nothing, except for the **exploration share**
  (``LoopPolicy.exploration_share``, default 0): that share of them, drawn at random,
  gets a small limit (``exploration_limit``), flagged ``exploration``. It is a policy
  choice with a cost: those loans default more often, by design of who they go to, and
  they are what makes outcomes exist where the model would reject (docs/model.md).
* **Repayment** follows the borrower's hidden state through :class:`DefaultMechanism`:
  each installment is missed with a probability set by the trajectory at its due date (a
  *fading* customer whose activity has faded by then misses far more often than a steady
  one) and, independently, by over-extension (a customer who buys with pay-later
  elsewhere misses more, however active) and thin liquidity (a customer who spends
  mostly on prepaid airtime misses more), a missed installment is paid late (a cure)
  or never, and once one is never paid, none after it is. Paid installments land in the
  repayments file of the day they are paid.

The files are ``loans_YYYY-MM-DD.csv`` and ``repayments_YYYY-MM-DD.csv``, one of each per
day, header-only on a day without rows, ingested by ``creditrisk ingest-loans``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk.schema import LOAN_COLUMNS, REPAYMENT_COLUMNS, outcome_file_name, purchase_mask

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class DefaultMechanism:
    """How repayment follows the hidden state (every number documented in docs/model.md).

    Two independent causes can make an installment missed:

    * **the trajectory**: ``miss`` gives the probability per trajectory; a *fading*
      customer uses ``faded_miss`` once its due date is past the customer's change point
      (its activity has faded, and it stops paying), ``miss['fading']`` before. This is
      the part a "goes quiet" proxy label stands for.
    * **over-extension**: ``over_extension * pay_later_p`` (at most 1), where
      ``pay_later_p`` is the customer's hidden habit of buying with pay-later elsewhere
      (0 for 85% of customers, 5-25% of retail purchases for the rest; the same trait
      puts those purchases on ChannelId_5, which the features read as
      ``share_channel_pay_later``). Installments already owed elsewhere compete for the
      same income, so a customer who buys on credit misses more, even while its activity
      stays steady: the part of default that silence does not show.
    * **thin liquidity**: ``hand_to_mouth * (airtime_weight - hand_to_mouth_above) /
      (1 - hand_to_mouth_above)`` when positive, where ``airtime_weight`` is the
      customer's hidden preference for airtime among its purchases (0.17 to 0.92, median
      0.77; the same weight draws its purchase categories, read as ``share_airtime``). A
      customer whose spending is mostly prepaid top-ups, bought as money comes in, lives
      closer to hand to mouth and has less slack on a due date (top-up behaviour is a
      known repayment signal in mobile-money lending). Such a customer is no less
      active, so silence does not show this part either.

    The installment is missed unless it escapes all three: ``1 - (1 - trajectory) * (1 -
    over-extension) * (1 - thin liquidity)``. A missed installment is cured (paid
    ``late_days`` later, uniformly) with probability ``cure_share``; otherwise it and
    every later installment of the loan are never paid.
    """

    miss: dict[str, float] = field(default_factory=lambda: {
        "steady": 0.02, "fading": 0.05, "growing": 0.01, "fraud_prone": 0.5})
    faded_miss: float = 0.85
    over_extension: float = 2.0
    hand_to_mouth: float = 0.3
    hand_to_mouth_above: float = 0.8
    cure_share: float = 0.25
    late_days: tuple[int, int] = (1, 25)


@dataclass(frozen=True)
class LoopPolicy:
    """Who checks out and what a loan looks like."""

    checkout_share: float = 0.3
    exploration_share: float = 0.0
    exploration_limit: float = 2000.0
    installments: int = 2
    min_amount: float = 500.0


@dataclass
class LoopState:
    """What the replay remembers between days: open loans and payments not yet delivered."""

    first_day: dt.date
    hidden: pd.DataFrame
    open_until: dict[str, dt.date] = field(default_factory=dict)
    payments: dict[dt.date, list[dict[str, str]]] = field(default_factory=dict)
    next_id: int = 1


def checkouts(transactions: pd.DataFrame, day: dt.date, share: float,
              rng: np.random.Generator) -> pd.Series:
    """Basket (UGX) per customer who checks out with pay-later on ``day``."""
    import pandas as pd

    ts = pd.to_datetime(transactions["TransactionStartTime"], utc=True)
    start = pd.Timestamp(day.isoformat(), tz="UTC")
    today = transactions[((ts >= start) & (ts < start + pd.Timedelta(days=1))).to_numpy()]
    buys = today[purchase_mask(today["Amount"].to_numpy(float),
                               today["ProviderId"].astype("str").to_numpy(),
                               today["ChannelId"].astype("str").to_numpy())]
    basket = buys.groupby("CustomerId")["Amount"].sum().sort_index()
    return basket[rng.random(len(basket)) < share]


def _loan_row(state: LoopState, customer: str, day: dt.date, amount: float, term: int,
              decision: pd.Series, exploration: bool, installments: int,
              rng: np.random.Generator) -> dict[str, str]:
    issued = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
        seconds=int(rng.integers(6 * 3600, 20 * 3600)))
    loan_id = f"LoanId_{state.next_id}"
    state.next_id += 1
    pd_at_issue = decision.get("probability_of_default")
    has_pd = pd_at_issue is not None and pd_at_issue == pd_at_issue
    return {
        "loan_id": loan_id, "customer_id": customer,
        "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ"), "amount": f"{amount:.2f}",
        "term_days": str(term), "installments": str(min(installments, term)),
        "decided_by": f"score:{decision['score_date']}",
        "model_name": str(decision.get("model_name") or ""),
        "model_version": str(decision.get("model_version") or ""),
        "pd_at_issue": f"{float(pd_at_issue):.8f}" if has_pd else "",
        "decision": str(decision["decision"]), "risk_band": str(decision.get("risk_band") or ""),
        "exploration": "true" if exploration else "false",
    }


def issue_loans(state: LoopState, day: dt.date, baskets: pd.Series, decisions: pd.DataFrame,
                policy: LoopPolicy, rng: np.random.Generator) -> list[dict[str, str]]:
    """The loans of ``day``: one per checkout the champion's decision (or exploration) funds."""
    loans = []
    for customer, basket in baskets.items():
        customer = str(customer)
        if customer not in decisions.index or state.open_until.get(customer, day) > day:
            continue
        row = decisions.loc[customer]
        explore = str(row["decision"]) != "APPROVE"
        if explore:
            if rng.random() >= policy.exploration_share:
                continue
            limit = policy.exploration_limit
        else:
            limit = float(row["recommended_limit"] or 0.0)
        amount = math.floor(min(float(basket), limit) / 500.0) * 500.0
        if amount < policy.min_amount:
            continue
        term = int(row["recommended_term_days"] or 0) or 14
        loans.append(_loan_row(state, customer, day, amount, term, row, explore,
                               policy.installments, rng))
    return loans


def schedule(issue_day: dt.date, term: int, installments: int) -> list[dt.date]:
    """Due days of the installments (the warehouse's ``loan_installments``)."""
    return [issue_day + dt.timedelta(days=math.ceil(k * term / installments))
            for k in range(1, installments + 1)]


def repay(state: LoopState, loan: dict[str, str], mech: DefaultMechanism,
          rng: np.random.Generator) -> dt.date:
    """Draw the loan's payments into ``state.payments``; return the day it closes."""
    hidden = state.hidden.loc[loan["customer_id"]]
    issued = dt.datetime.strptime(loan["issued_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    n, amount = int(loan["installments"]), float(loan["amount"])
    last = issued.date()
    for k, due in enumerate(schedule(issued.date(), int(loan["term_days"]), n), start=1):
        faded = (hidden["trajectory"] == "fading"
                 and (due - state.first_day).days >= float(hidden["change_day"]))
        trajectory = mech.faded_miss if faded else mech.miss[str(hidden["trajectory"])]
        over = min(1.0, mech.over_extension * float(hidden.get("pay_later_p", 0.0)))
        thin = mech.hand_to_mouth * min(1.0, max(0.0, (
            float(hidden.get("airtime_weight", 0.0)) - mech.hand_to_mouth_above)
            / (1.0 - mech.hand_to_mouth_above)))
        p_miss = 1.0 - (1.0 - trajectory) * (1.0 - over) * (1.0 - thin)
        paid = due - dt.timedelta(days=int(rng.integers(0, 3)))
        if rng.random() < p_miss:
            if rng.random() >= mech.cure_share:
                return due + dt.timedelta(days=120)  # defaulted: no new loan for a while
            paid = due + dt.timedelta(days=int(rng.integers(mech.late_days[0],
                                                             mech.late_days[1] + 1)))
        moment = max(dt.datetime.combine(paid, dt.time(), tzinfo=dt.UTC)
                     + dt.timedelta(seconds=int(rng.integers(8 * 3600, 22 * 3600))),
                     issued + dt.timedelta(hours=1))
        state.payments.setdefault(moment.date(), []).append({
            "loan_id": loan["loan_id"], "installment": str(k), "due_date": due.isoformat(),
            "paid_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "amount": f"{amount / n:.2f}"})
        last = max(last, moment.date())
    return last


def write_day(folder: Path, day: dt.date, loans: list[dict[str, str]],
              payments: list[dict[str, str]]) -> list[Path]:
    """Write the day's loans and repayments files (header-only when empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, cols, records in (("loans", LOAN_COLUMNS, loans),
                                ("repayments", REPAYMENT_COLUMNS, payments)):
        path = folder / outcome_file_name(kind, day)
        body = "".join(",".join(r[c] for c in cols) + "\n" for r in records)
        path.write_text(",".join(cols) + "\n" + body)
        out.append(path)
    return out


def step(state: LoopState, day: dt.date, transactions: pd.DataFrame, decisions: pd.DataFrame,
         folder: Path, *, policy: LoopPolicy, mechanism: DefaultMechanism,
         rng: np.random.Generator) -> dict[str, Any]:
    """One day of the loop: checkouts, loans, their future payments, the day's two files."""
    baskets = checkouts(transactions, day, policy.checkout_share, rng)
    loans = issue_loans(state, day, baskets, decisions, policy, rng)
    for loan in loans:
        state.open_until[loan["customer_id"]] = repay(state, loan, mechanism, rng)
    payments = sorted(state.payments.pop(day, []), key=lambda p: p["paid_at"])
    write_day(folder, day, loans, payments)
    return {"day": day.isoformat(), "checkouts": len(baskets), "loans": len(loans),
            "exploration": sum(r["exploration"] == "true" for r in loans),
            "payments": len(payments)}
