"""The class page's figures: the verdicts per claim at a glance, and the students' headline numbers side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reports.grading.table import KINDS, NOT_CHECKED, ClassTable  # noqa: E402

DPI = 80
COLOURS = {
    "holds": "#2e7d32",
    "refuted": "#c62828",
    "known refutation": "#ef6c00",
    "inconclusive": "#757575",
    "not applicable": "#bdbdbd",
    "error": "#6a1b9a",
    "not evidence": "#90caf9",
    "not run": "#e0e0e0",
    NOT_CHECKED: "#8d6e63",
}


def verdict_counts(table: ClassTable, out: Path) -> tuple[str, str] | None:
    """One stacked bar per student claim: how many students' cells are of each kind."""
    if not table.claims or not table.students:
        return None
    counts = table.counts()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table.claims) + 1.2))
    ids = [c.id for c in table.claims][::-1]
    left = np.zeros(len(ids))
    for kind in (*KINDS, NOT_CHECKED):
        widths = np.array([counts[i][kind] for i in ids], dtype=float)
        if widths.any():
            ax.barh(ids, widths, left=left, color=COLOURS[kind], label=kind, edgecolor="white")
            left += widths
    ax.set_xlabel("students")
    ax.set_xlim(0, len(table.students))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(ids)), ncol=4, frameon=False)
    ax.set_title("Verdicts per claim")
    caption = "Per claim, how many students' models it holds for, is refuted for, ...: the summary table as bars."
    return _save(fig, out, "class-verdicts.png", caption)


def headline_scatter(table: ClassTable, out: Path) -> tuple[str, str] | None:
    """Each student's mean headline value of the first student claim against the second's (by default
    improved-99's test accuracy and improved-no-overfit's val_loss_rise, the measure its rule refutes on),
    ±1 SD over seeds, coloured by the second claim's verdict; the notebook's model is the star. Read from
    the recorded headlines (a rule's first test), whatever each claim measures."""
    numeric = [c for c in table.claims if any(row.checked and row.cells[c.id].values for row in table.rows)]
    if len(numeric) < 2:
        return None
    x_claim, y_claim = numeric[:2]
    fig, ax = plt.subplots(figsize=(7, 5))
    shown = set()
    for row in table.rows:
        if not row.checked:
            continue
        x, y = row.cells[x_claim.id], row.cells[y_claim.id]
        if not (x.values and y.values):
            continue
        kind = y.kind
        ax.errorbar(
            x.mean,
            y.mean,
            xerr=np.std(x.values, ddof=1) if len(x.values) > 1 else None,
            yerr=np.std(y.values, ddof=1) if len(y.values) > 1 else None,
            fmt="*" if row.result.reference else "o",
            markersize=16 if row.result.reference else 8,
            color="black" if row.result.reference else COLOURS[kind],
            ecolor="#999",
            capsize=3,
            label=None if kind in shown or row.result.reference else f"{y_claim.id}: {kind}",
        )
        if not row.result.reference:
            shown.add(kind)
        ax.annotate(
            "notebook" if row.result.reference else row.result.name,
            (x.mean, y.mean),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=9,
        )
    names = {
        c.id: next((r.cells[c.id].name for r in table.rows if r.checked and r.cells[c.id].name), c.id)
        for c in (x_claim, y_claim)
    }
    ax.set_xlabel(f"{x_claim.id}: {names[x_claim.id]} (mean over seeds)")
    ax.set_ylabel(f"{y_claim.id}: {names[y_claim.id]} (mean over seeds)")
    ax.grid(alpha=0.3)
    if not shown:  # no student's model measured on both: nothing to compare the notebook's with
        plt.close(fig)
        return None
    ax.legend(fontsize=9)
    ax.set_title("Each student's model (★: the notebook's)")
    caption = (
        f"Each student's {names[x_claim.id]} ({x_claim.id}) against {names[y_claim.id]} ({y_claim.id}), "
        f"each claim's headline measure, mean ± 1 SD over seeds; colour: the verdict of {y_claim.id}, whose "
        "rule may also weigh measures not drawn here (see the claim); ★ the notebook's model."
    )
    return _save(fig, out, "class-headlines.png", caption)


def draw(table: ClassTable, out: Path) -> list[tuple[str, str]]:
    """Every figure that the table has data for, as (file name relative to `out`, caption)."""
    out.mkdir(parents=True, exist_ok=True)
    return [f for f in (headline_scatter(table, out), verdict_counts(table, out)) if f is not None]


def _save(fig: plt.Figure, out: Path, name: str, caption: str) -> tuple[str, str]:
    fig.savefig(out / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return name, caption
