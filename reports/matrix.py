"""The verdict matrix: one row per claim, one column per evidence file (a backend, a release, a device)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader

from fixtures.records import ClaimRecord
from reports import twosample
from reports.build import num
from reports.evidence import Evidence, display_verdict, load

BACKEND_LIBRARY = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


@dataclass
class Column:
    label: str
    evidence: Evidence


@dataclass
class Cell:
    claim: ClaimRecord | None
    verdict: str
    headline: str
    older: bool
    differs: bool  # the verdict is not the first column's
    test: twosample.TwoSample | None  # headline values against the first column's (None in the first column)


@dataclass
class Row:
    claim_id: str
    quote: str
    cells: list[Cell]

    @property
    def differs(self) -> bool:
        return any(c.differs for c in self.cells)


def label_of(ev: Evidence) -> str:
    """A column label from the evidence's Keras backend, its library and Keras versions, device and profile."""
    versions = ev.session.versions or {}
    backend = versions.get("keras_backend") or "backend?"
    library = versions.get(BACKEND_LIBRARY.get(backend, backend))
    gpus = (ev.session.device or {}).get("gpus") or []
    profile = ev.session.profile
    return (
        f"{backend} {library or ''}".strip()
        + f" · Keras {versions.get('keras', '?')} · "
        + (", ".join(gpus) if gpus else "CPU")
        + ("" if profile == "notebook" else f" · {profile} profile")
    )


def columns(specs: list[str]) -> list[Column]:
    """Load `[LABEL=]PATH` specs; labels that would repeat get their column number appended."""
    loaded = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or Path(spec).exists():
            label, path = "", spec
        ev = load(path)
        loaded.append(Column(label or label_of(ev), ev))
    labels = [c.label for c in loaded]
    for number, col in enumerate(loaded, 1):
        if labels.count(col.label) > 1:
            col.label += f" · column {number}"
    return loaded


def headline_text(claim: ClaimRecord | None) -> str:
    """The headline quantity as a short string: a single value, or the mean over n seeds."""
    h = claim.headline if claim else None
    if h is None or not h.values:
        return "—"
    if len(h.values) == 1:
        return f"{h.name} = {num(h.values[0])}"
    return f"{h.name} mean {num(sum(h.values) / len(h.values))} (n = {len(h.values)})"


def rows(cols: list[Column]) -> list[Row]:
    """One row per claim in any column, in the first column's order, then the others'; each cell is set
    against the first column's (verdict differs, Welch test of the headline values)."""
    ids = list(dict.fromkeys(c.id for col in cols for c in col.evidence.claims))
    out = []
    for cid in ids:
        claims = [col.evidence.claim(cid) for col in cols]
        verdicts = [display_verdict(c) if c else "absent" for c in claims]
        cells = [
            Cell(
                c,
                v,
                headline_text(c),
                bool(c) and col.evidence.is_older(c),
                v != verdicts[0],
                None if i == 0 else twosample.headline_test(claims[0], c),
            )
            for i, (col, c, v) in enumerate(zip(cols, claims, verdicts, strict=True))
        ]
        quote = next((c.quote for c in claims if c), "")
        out.append(Row(cid, quote, cells))
    return out


def cell_markdown(cell: Cell) -> str:
    """One cell as Markdown: verdict (bold when it differs), headline, (older), the two-sample test."""
    text = f"**{cell.verdict}**" if cell.differs else cell.verdict
    text += f" · {cell.headline}" + (" *(older)*" if cell.older else "")
    if cell.test is not None:
        text += f" · {cell.test.text()}"
    return text.replace("|", "/")


def markdown(cols: list[Column], table: list[Row]) -> str:
    """The matrix as a Markdown table, for CI logs and job summaries."""
    lines = [
        "# Verdict matrix",
        "",
        f"Columns compared with the first ({cols[0].label}) by {twosample.RULE}. "
        "**Bold**: verdict differs from the first column; *(older)*: kept from a session before that file's newest.",
        "",
        "| claim | " + " | ".join(c.label.replace("|", "/") for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for row in table:
        cells = [cell_markdown(cell) for cell in row.cells]
        lines.append(f"| {row.claim_id}{' ≠' if row.differs else ''} | " + " | ".join(cells) + " |")
    differing = [r.claim_id for r in table if r.differs]
    lines += [
        "",
        f"{len(differing)} of {len(table)} claims differ in verdict"
        + (f": {', '.join(differing)}." if differing else "."),
        "",
    ]
    return "\n".join(lines)


def build(cols: list[Column], out: Path) -> tuple[Path, Path]:
    """Write out/matrix.html and out/matrix.md; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    table = rows(cols)
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(css=lambda verdict: "v-" + verdict.replace(" ", "-"))
    html = env.get_template("matrix.html.j2").render(
        columns=cols,
        rows=table,
        rule=twosample.RULE,
        differing=sum(r.differs for r in table),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    (out / "matrix.html").write_text(html, encoding="utf-8")
    (out / "matrix.md").write_text(markdown(cols, table), encoding="utf-8")
    return out / "matrix.html", out / "matrix.md"
