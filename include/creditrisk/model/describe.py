"""What the MLflow UI shows: the registered model's description and each version's card.

The registered model's description says what it predicts, the label, the population and
the policy it feeds. A version's description is a short model card in Markdown sections
(``### Title``), written as the trainer: the test metrics with their intervals, the
ladder, calibration by band, the training window and data hash at registration
(:func:`version_card`); the gate's verdict with each check when the gate has run
(:func:`gate_section`); the newest swap-set summary when the challenger was shadowed
(creditrisk.scoring.shadow). The full card stays an artifact of the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

GATE_SECTION, SWAP_SECTION = "Gate verdict", "Swap set (newest night)"


def model_description(label: dict[str, Any], policy: dict[str, Any]) -> str:
    """The registered model's description, from the training config and the policy."""
    bands = ", ".join(f"{b['band']} < {b['max_pd']}" for b in policy.get("bands", [])
                      if isinstance(b, dict) and "band" in b and "max_pd" in b)
    return "\n".join([
        "**Predicts** the probability of default (PD) of a Xente customer at a BNPL "
        "checkout: the probability of the proxy outcome below within the horizon.",
        "",
        f"**Label** (`{label.get('label_strategy')}`, {label.get('horizon_days')} days): bad "
        "= no customer-initiated purchase in the horizon from the score date, or a "
        "confirmed fraud. A behavioural proxy: no repayment outcome exists yet.",
        "",
        f"**Population**: customers with a customer-initiated purchase in the "
        f"{policy['population']['lookback_days']} days before the score date; dormant and "
        "thin-file customers get the policy's answer, no PD.",
        "",
        "**Feeds** the lending policy (include/creditrisk/conf/policy.yaml): PD to credit "
        f"score, risk band{' (' + bands + ')' if bands else ''}, APPROVE / REVIEW / "
        "DECLINE, limit and term; nightly into `risk_scores`, in real time through the API.",
        "",
        "**Aliases**: `champion` is served; `challenger` is the newest candidate, shadowed "
        "nightly. Every move of `champion` is audited in `model_promotions`. docs/model.md.",
    ])


def _ci(v: dict[str, float]) -> str:
    return f"{v['estimate']:.4f} [{v['lo']:.4f}, {v['hi']:.4f}]"


def version_card(report: dict[str, Any], ladder: pd.DataFrame,
                 fingerprint: dict[str, Any], as_of: str) -> str:
    """The version's short model card at registration (Markdown)."""
    iv, gain, large = report["intervals"], report["gain_vs_recency"], report["in_the_large"]
    lines = [
        f"**{report['rung']}** ({report['calibration']} calibration), trained as of {as_of} "
        f"on {fingerprint.get('rows')} rows, {fingerprint.get('customers')} customers.",
        "", "### Test metrics (95% customer-clustered bootstrap)",
        f"- AUC {_ci(iv['auc'])}; KS {_ci(iv['ks'])}; Brier {_ci(iv['brier'])}; "
        f"ECE by decile {_ci(iv['ece'])}",
        f"- mean PD {large['mean_pd']:.4f} vs bad rate {large['bad_rate']:.4f} "
        f"(n = {report['n']})",
        f"- AUC gain over recency alone {_ci(gain)} (recency AUC {report['recency_auc']:.4f})",
        "", "### Ladder (validation)", "| rung | AUC | selected |", "|---|---|---|",
    ]
    auc_col = next((c for c in ladder.columns if "auc" in str(c).lower()), None)
    for row in ladder.to_dict(orient="records"):
        auc = row.get(auc_col) if auc_col else None
        lines.append(f"| {row.get('rung', row.get('name', '?'))} | "
                     f"{'' if auc is None else f'{float(auc):.4f}'} | "
                     f"{'yes' if row.get('selected') else ''} |")
    lines += ["", "### Calibration by band (test)",
              "| band | n | mean PD | bad rate [95%] |", "|---|---|---|---|"]
    for band, row in report["by_band"].iterrows():
        lines.append(f"| {band} | {int(row['n'])} | {row['mean_pd']:.4f} | "
                     f"{row['bad_rate']:.4f} [{row['bad_rate_lo']:.4f}, "
                     f"{row['bad_rate_hi']:.4f}] |")
    lines += ["", "### Data",
              f"- label `{fingerprint.get('label_strategy')}`, horizon "
              f"{fingerprint.get('horizon_days')} days",
              *(f"- {part}: {fingerprint[f'{part}_dates']} ({fingerprint.get(f'{part}_rows')}"
                " rows)" for part in ("train", "calibration", "validation", "test")
                if f"{part}_dates" in fingerprint),
              f"- data hash `{fingerprint.get('hash')}`",
              "", f"### {GATE_SECTION}", "not run yet"]
    return "\n".join(lines)


def gate_section(decision: str, mode: str, reasons: list[str]) -> str:
    """The gate's verdict with each check, for the version's description."""
    return "\n".join([f"**{decision}** ({mode} mode)", *(f"- {r}" for r in reasons)])
