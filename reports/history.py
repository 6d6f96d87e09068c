"""Each claim's history across nights: its headline number with its interval per night and environment, coloured
by verdict, with the nights where a verdict changed significantly marked.

The history folder holds one evidence file per night and environment, as the nightly workflow keeps them:
DIR/<YYYY-MM-DD>/<env>/evidence.json (and, for a pre-release that did not install or import,
DIR/<YYYY-MM-DD>/<env>/unavailable.txt with the reason instead).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, FileSystemLoader  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from fixtures.records import EVIDENCE_FILE  # noqa: E402
from reports.build import num  # noqa: E402
from reports.evidence import Evidence, EvidenceError, display_verdict, load  # noqa: E402
from reports.figures import DPI, mean_ci  # noqa: E402
from reports.regression import VERDICT_RULE, VerdictChange, compare  # noqa: E402

UNAVAILABLE = "unavailable.txt"
COLOURS = {
    "holds": "#2e7d32",
    "refuted": "#c62828",
    "known refutation": "#ef6c00",
    "inconclusive": "#757575",
}
MARKERS = "osD^v<>pPX*h"
RING = {"marker": "o", "mfc": "none", "mec": "#b71c1c", "mew": 2}
"""Around a point whose verdict changed significantly from its environment's previous night."""
LAYOUT = "DIR/<YYYY-MM-DD>/<env>/evidence.json"


@dataclass(frozen=True)
class Change:
    """A verdict of one claim in one environment that differs from that environment's previous night."""

    night: str
    previous: str
    env: str
    verdict: VerdictChange


@dataclass(frozen=True)
class Point:
    """One claim's headline in one environment on one night."""

    night: str
    env: str
    verdict: str
    name: str
    mean: float | None  # None: the claim records no headline values
    half_width: float | None
    n: int
    older: bool


@dataclass(frozen=True)
class Cell:
    """One night of one environment in a claim's table."""

    point: Point | None
    changed: bool  # the verdict changed significantly from this environment's previous night
    unavailable: bool  # the environment did not install or import that night


@dataclass
class History:
    """Every night's evidence, the environments that did not run, and the verdict changes between nights."""

    nights: list[str]
    envs: list[str]
    evidence: dict[tuple[str, str], Evidence]
    unavailable: dict[tuple[str, str], str]
    changes: list[Change] = field(default_factory=list)

    def claim_ids(self) -> list[str]:
        """Every claim of any night, in the order the newest nights list them."""
        ordered = sorted(self.evidence.items(), key=lambda item: item[0][0], reverse=True)
        return list(dict.fromkeys(c.id for _, ev in ordered for c in ev.claims))

    def points(self, claim_id: str) -> list[Point]:
        """The claim's verdict, and its headline's mean and 95% interval if it has one, per night and environment."""
        found = []
        for (night, env), ev in sorted(self.evidence.items()):
            claim = ev.claim(claim_id)
            if claim is None:
                continue
            values = claim.headline.values if claim.headline else []
            mean, half = mean_ci(values) if values else (None, None)
            found.append(
                Point(
                    night,
                    env,
                    display_verdict(claim),
                    claim.headline.name if claim.headline else "",
                    mean,
                    half,
                    len(values),
                    ev.is_older(claim),
                )
            )
        return found

    def claim_changes(self, claim_id: str) -> list[Change]:
        return [c for c in self.changes if c.verdict.claim_id == claim_id]

    def table(self, claim_id: str) -> list[tuple[str, list[Cell]]]:
        """The claim's table: one row per environment, one cell per night."""
        points = {(p.night, p.env): p for p in self.points(claim_id)}
        changed = {(c.night, c.env) for c in self.claim_changes(claim_id) if c.verdict.significant}
        return [
            (env, [Cell(points.get((n, env)), (n, env) in changed, (n, env) in self.unavailable) for n in self.nights])
            for env in self.envs
        ]


def night_of(folder: Path) -> str:
    """The night a folder of DIR names, checked to be a YYYY-MM-DD date."""
    try:
        return date.fromisoformat(folder.name).isoformat()
    except ValueError:
        raise EvidenceError(f"{folder}: not a night's folder (YYYY-MM-DD); the layout is {LAYOUT}") from None


def version_order(env: str) -> tuple[bool, list]:
    """Sort key: names with a version first, newest first (their numbers compared as numbers), then the others."""
    parts = [(0, -int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", env)]
    return not re.search(r"\d", env), parts


def read(root: Path) -> History:
    """Load DIR's nights and environments; EvidenceError when DIR is missing, empty or laid out otherwise."""
    if not root.is_dir():
        raise EvidenceError(f"{root}: no such folder (the layout is {LAYOUT})")
    evidence, unavailable = {}, {}
    for night_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        night = night_of(night_dir)
        for env_dir in sorted(p for p in night_dir.iterdir() if p.is_dir()):
            if (env_dir / EVIDENCE_FILE).is_file():
                evidence[night, env_dir.name] = load(env_dir / EVIDENCE_FILE)
            elif (env_dir / UNAVAILABLE).is_file():
                unavailable[night, env_dir.name] = (env_dir / UNAVAILABLE).read_text(encoding="utf-8").strip()
    if not evidence:
        raise EvidenceError(f"{root}: no evidence file in the layout {LAYOUT}")
    nights = sorted({n for n, _ in evidence} | {n for n, _ in unavailable})
    envs = sorted({e for _, e in evidence} | {e for _, e in unavailable}, key=version_order)
    history = History(nights, envs, evidence, unavailable)
    history.changes = verdict_changes(history)
    return history


def verdict_changes(history: History) -> list[Change]:
    """Each environment's verdict changes from its previous night with evidence to the next, by the nightly
    comparison's rule (reports.regression: Welch's test on the headline values; untestable counts as significant)."""
    changes = []
    for env in history.envs:
        nights = [n for n in history.nights if (n, env) in history.evidence]
        for previous, night in pairwise(nights):
            found = compare(history.evidence[previous, env], history.evidence[night, env])
            changes += [Change(night, previous, env, v) for v in found.verdicts]
    return changes


def figure(history: History, claim_id: str, out: Path) -> str | None:
    """A PNG of the claim's headline per night and environment (marker: environment; colour: verdict; a red ring:
    a significant verdict change from that environment's previous night); its file name, None without a headline."""
    points = [p for p in history.points(claim_id) if p.mean is not None]
    if not points:
        return None
    x_of = {night: i for i, night in enumerate(history.nights)}
    width = 0.6 / max(len(history.envs), 1)
    offset = {env: (i - (len(history.envs) - 1) / 2) * width for i, env in enumerate(history.envs)}
    significant = {(c.night, c.env) for c in history.claim_changes(claim_id) if c.verdict.significant}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(history.nights) + 2.5), 2.8))
    for i, env in enumerate(history.envs):
        mine = [p for p in points if p.env == env]
        if not mine:
            continue
        xs = [x_of[p.night] + offset[env] for p in mine]
        ax.plot(xs, [p.mean for p in mine], color="#999", lw=0.8, zorder=1)
        for x, p in zip(xs, mine, strict=True):
            colour = COLOURS.get(p.verdict, "#bbb")
            ax.errorbar(
                [x],
                [p.mean],
                yerr=[[p.half_width]],
                fmt=MARKERS[i % len(MARKERS)],
                color=colour,
                ms=7,
                capsize=3,
                mfc=colour if not p.older else "white",
                zorder=2,
            )
            if (p.night, env) in significant:
                ax.plot([x], [p.mean], ls="", ms=17, zorder=3, **RING)
        ax.plot([], [], MARKERS[i % len(MARKERS)], color="#555", label=env)
    legend = ax.get_legend_handles_labels()[0]
    legend += [Patch(color=COLOURS.get(v, "#bbb"), label=v) for v in dict.fromkeys(p.verdict for p in points)]
    if significant:
        legend.append(Line2D([], [], ls="", ms=10, label="verdict changed significantly", **RING))
    ax.set_xticks(range(len(history.nights)), history.nights, rotation=30 if len(history.nights) > 6 else 0)
    ax.set_xlim(-0.6, len(history.nights) - 0.4)
    ax.set_ylabel(points[-1].name, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=legend, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    name = f"history-{re.sub(r'[^A-Za-z0-9_-]', '_', claim_id)}.png"
    fig.savefig(out / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return name


def change_text(change: Change) -> str:
    """One line: when, where, which claim, from what to what, and the two-sample test that decided."""
    v = change.verdict
    kind = "significant" if v.significant else "within noise"
    return (
        f"{change.night} {change.env}: {v.claim_id} {v.before} → {v.after} ({kind}, since {change.previous}; "
        f"{v.test.text()})"
    )


def markdown(history: History) -> str:
    """The history for a job summary: the verdict changes across nights, and each claim's verdicts per night."""
    significant = [c for c in history.changes if c.verdict.significant]
    lines = [
        "# Claims across nights",
        "",
        f"Nights: {len(history.nights)} ({' to '.join(dict.fromkeys([history.nights[0], history.nights[-1]]))}), "
        f"environments {', '.join(history.envs)}. The rule: {VERDICT_RULE}.",
        "",
        f"## Significant verdict changes ({len(significant)})",
        "",
        *([f"- {change_text(c)}" for c in significant] or ["none"]),
    ]
    within = [c for c in history.changes if not c.verdict.significant]
    if within:
        lines += ["", f"## Verdict changes within noise ({len(within)})", "", *[f"- {change_text(c)}" for c in within]]
    if history.unavailable:
        lines += ["", "## Not run", "", *[f"- {n}: {why}" for (n, _), why in sorted(history.unavailable.items())]]
    return "\n".join(lines) + "\n"


def build(root: Path, out: Path) -> tuple[Path, Path]:
    """Write out/history.html (with a figure per claim) and out/history.md from DIR's nights; return both paths."""
    history = read(root)
    out.mkdir(parents=True, exist_ok=True)
    claims = []
    for claim_id in history.claim_ids():
        newest = max(key for key, ev in history.evidence.items() if ev.claim(claim_id))
        claims.append(
            {
                "id": claim_id,
                "quote": history.evidence[newest].claim(claim_id).quote,
                "figure": figure(history, claim_id, out),
                "rows": history.table(claim_id),
                "changes": history.claim_changes(claim_id),
            }
        )
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, change=change_text, css=lambda verdict: "v-" + verdict.replace(" ", "-"))
    html = env.get_template("history.html.j2").render(
        history=history,
        claims=claims,
        rule=VERDICT_RULE,
        layout=LAYOUT,
        significant=sum(c.verdict.significant for c in history.changes),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    (out / "history.html").write_text(html, encoding="utf-8")
    (out / "history.md").write_text(markdown(history), encoding="utf-8")
    return out / "history.html", out / "history.md"
