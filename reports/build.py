"""Assembles index.html and its figures from the evidence, in the notebook's order."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol

from jinja2 import ChainableUndefined, Environment, FileSystemLoader

from fixtures.records import ClaimRecord, Detectable, Look
from reports import figures, regression
from reports.evidence import Evidence, display_verdict

# (anchor, heading, figure function) in the notebook's order.
SECTIONS: tuple[tuple[str, str, Callable[[Evidence, Path], list[figures.Figure]] | None], ...] = (
    ("architecture", "Architecture", None),
    ("training", "Training curves", figures.training_curves),
    ("batch-size", "Batch size", figures.batch_size),
    ("cnn-vs-mlp", "CNN vs MLP", figures.cnn_vs_mlp),
    ("inside", "Inside the network", figures.inside),
    ("predictions", "Predictions", figures.predictions),
    ("specificity", "Specificity", figures.specificity),
    ("timing", "Timing", None),
)
# Claim-id prefixes that pin a claim to a report section; others go by their own "section" field.
PREFIXES = (
    ("arch-", "architecture"),
    ("overfitting", "training"),
    ("improved", "training"),
    ("batch-", "batch-size"),
    ("cnn-vs-mlp", "cnn-vs-mlp"),
    ("gpu-", "cnn-vs-mlp"),
    ("ambigu", "predictions"),
    ("deeper-features", "specificity"),
)
BY_FIELD = {"architecture": "architecture", "training": "training", "analysis": "inside"}


@dataclass
class Section:
    id: str
    title: str
    claims: list[ClaimRecord]
    figures: list[figures.Figure]


class Sectioned(Protocol):
    """What places a claim in the report: its id and its test module's section (a record, or a collected claim)."""

    @property
    def id(self) -> str: ...

    @property
    def section(self) -> str: ...


def section_of(claim: Sectioned) -> str:
    """The report section a claim's evidence block belongs in."""
    for prefix, section in PREFIXES:
        if claim.id.startswith(prefix):
            return section
    return BY_FIELD.get(claim.section, "inside")


def stat_rows(statistics: dict) -> list[dict]:
    """Table rows for a claim's statistics: one per Summary (with how it decided, for a rule's test), three
    (a, b, diff) per Comparison."""
    rows = []
    for name, s in statistics.items():
        if "mean" in s:
            rows.append({"name": name, **s})
            if "p_holds" in s:  # a rule's test: how it decided
                rows[-1]["test"] = f"{s.get('method')}: {part_decision(s)}"
            rows += joined_rows(name, s.get("parts") or {})
            continue
        for part in ("a", "b", "diff"):
            rows.append({"name": f"{name} · {part}", **s.get(part, {})})
        lo, hi = s.get("p_a_better_ci") or (None, None)
        rows[-1]["test"] = (
            f"P(a better) = {num(s.get('p_a_better'))} [{num(lo)}, {num(hi)}], "
            f"t-test p = {num(s.get('t_pvalue'))}, {'higher' if s.get('higher_is_better', True) else 'lower'} is better"
        )
    return rows


def joined_rows(name: str, parts: dict) -> list[dict]:
    """The rows of the tests a joined test (stats.Combined) combines, nested under its name: each one's p-values;
    the joined test's row above says how they combine and decide."""
    rows = []
    for part, s in parts.items():
        label = f"{name} · {part}"
        text = f"p(holds) = {num(s.get('p_holds'))}, p(refuted) = {num(s.get('p_refutes'))}"
        rows.append({"name": label, **s, "test": f"{s.get('method')}: {text}, joined into {name}"})
        rows += joined_rows(label, s.get("parts") or {})
    return rows


def level(at: float | None, alpha: float | None) -> str:
    """A level the rule uses, as a share of the test's own alpha where it is one (α, α/2, α/3) and as a number."""
    if not isinstance(alpha, (int, float)) or not isinstance(at, (int, float)) or at <= 0:
        return num(at)
    k = alpha / at
    share = "α" if math.isclose(k, 1) else f"α/{round(k)}" if math.isclose(k, round(k)) else None
    return f"{share} = {num(at)}" if share else num(at)


def part_decision(s: dict) -> str:
    """How a rule took one of its tests: p of holding and of refuting against the levels the rule holds and
    refutes at (or that it cannot), and the decision as the rule takes it. Evidence recorded before the levels
    were shows the test's own alpha, labelled as such, since its decision alone may not be the rule's."""
    p_holds, p_refutes = f"p(holds) = {num(s.get('p_holds'))}", f"p(refuted) = {num(s.get('p_refutes'))}"
    if "refutes_at" not in s:
        return (
            f"{p_holds}, {p_refutes}; alone, at its own α = {num(s.get('alpha'))} → {s.get('decision')} (this "
            "evidence does not record the levels the rule combines it at: see the claim's verdict)"
        )
    alpha, holds_at, refutes_at = s.get("alpha"), s.get("holds_at"), s.get("refutes_at")
    holds = f"holds needs < {level(holds_at, alpha)}" if holds_at is not None else "cannot make the claim hold"
    refutes = f"refutes at < {level(refutes_at, alpha)}" if refutes_at is not None else "cannot refute"
    return f"{p_holds} ({holds}), {p_refutes} ({refutes}) → {s.get('decision')}"


def layer_tables(claims: list[ClaimRecord]) -> dict[str, list[dict]]:
    """Model title -> layer list, once per model, from architecture claims that measured a summary."""
    tables: dict[str, list[dict]] = {}
    for c in claims:
        if section_of(c) == "architecture" and "model" in c.measured and "layers" in c.measured:
            tables.setdefault(c.measured["model"], c.measured["layers"])
    return tables


def look(entry: Look, unit: str = "seeds") -> str:
    """One sequential look as a line: seeds (or rounds), statistic, p against its boundary, decision."""
    return (
        f"{num(entry.n)} {unit}: statistic {num(entry.statistic)}, p = {num(entry.p)} "
        f"vs boundary α = {num(entry.alpha)} → {entry.verdict}"
    )


def looks_unit(claim: ClaimRecord) -> str:
    """What a claim's looks count: seeds, or a timing claim's rounds. Evidence from before the unit was recorded:
    rounds where the looks record an interval (a timing look does, a seed look does not)."""
    return claim.looks_unit or ("rounds" if claim.looks and claim.looks[0].ci_low is not None else "seeds")


def detectable(claim: ClaimRecord) -> str:
    """What an undecided comparison can rule out: the 80%-power detectable effect and the seeds the observed
    one needs."""
    d = claim.detectable or Detectable()
    n = len(claim.seeds) or "these"
    needed = d.seeds_needed
    smallest = (
        f"At {n} seeds the smallest difference in rates that decides is {num(d.effect)}"
        if d.power is None  # an exact count test: no power approximation
        else f"At {n} seeds the smallest effect detectable with {num(round(100 * d.power))}% power is {num(d.effect)}"
    )
    return f"{smallest} (observed {num(d.observed)}); " + (
        f"the observed effect would need {num(needed)} seeds."
        if needed is not None
        else "the seeds the observed effect would need are not estimable."
    )


def num(x: object) -> str:
    """A number for humans: 4 significant digits, thousands separators for big integers, NaN/∞ spelled out."""
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:.4g}"


def shape(x: object) -> str:
    """A tensor shape as a tuple, e.g. (26, 26, 16); scalars as numbers."""
    return f"({', '.join(map(str, x))})" if isinstance(x, (list, tuple)) else num(x)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=num,
        verdict=display_verdict,
        pretty=lambda x: json.dumps(x, indent=1),
        css=lambda verdict: "v-" + verdict.replace(" ", "-"),
        shape=shape,
    )
    return env


def build(ev: Evidence, out: Path, baseline: Evidence | None = None) -> Path:
    """Write out/index.html plus its PNGs and return the index path."""
    out.mkdir(parents=True, exist_ok=True)
    order = [sid for sid, _, _ in SECTIONS]
    claims = sorted(ev.claims, key=lambda c: order.index(section_of(c)))
    sections = [
        Section(sid, title, [c for c in claims if section_of(c) == sid], draw(ev, out) if draw else [])
        for sid, title, draw in SECTIONS
    ]
    padding = ev.claim("arch-same-padding")
    trained = [r for r in ev.runs if r.source == "trained" and ev.is_newest(r)]
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            ev=ev,
            session=ev.session,
            claims=claims,
            sections=sections,
            stat_rows=stat_rows,
            look=look,
            looks_unit=looks_unit,
            detectable=detectable,
            run_labels={r.key: r.label for r in ev.runs},
            layer_tables=layer_tables(claims),
            padding=padding.measured if padding else {},
            trained=len(trained),
            train_s=sum(r.wall_s or 0 for r in trained),
            cached=sum(ev.is_newest(r) for r in ev.runs) - len(trained),
            baseline=baseline,
            changes=regression.compare(baseline, ev) if baseline else None,
            stat_rule=regression.STAT_RULE,
            time_rule=regression.TIME_RULE,
            verdict_rule=regression.VERDICT_RULE,
            older=[c.id for c in claims if ev.is_older(c)],
            backend=(ev.session.versions or {}).get("keras_backend"),
            generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
    )
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
