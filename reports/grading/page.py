"""The class page in three forms, from a ClassTable: class.html (with figures), class.md and class.csv."""

from __future__ import annotations

import csv
import os
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader

from reports.grading import figures
from reports.grading.limits import size_text
from reports.grading.table import Cell, ClassTable

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def write(table: ClassTable, out: Path, title: str, intro: str) -> list[Path]:
    """Write class.html, class.md, class.csv and the figures into `out`; return the three pages' paths."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = figures.draw(table, out)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(css=lambda kind: "k-" + kind.replace(" ", "-"), value=headline_value)
    html = env.get_template("class.html.j2").render(
        table=table,
        title=title,
        intro=intro,
        kinds=table.count_kinds(),
        counts=table.counts(),
        notes=table.footnotes(),
        figures=drawn,
        size=size_text,
        relative=lambda path: os.path.relpath(path, out),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    paths = [out / "class.html", out / "class.md", out / "class.csv"]
    paths[0].write_text(html, encoding="utf-8")
    paths[1].write_text(markdown(table, title, intro, drawn), encoding="utf-8")
    write_csv(paths[2], table)
    return paths


def headline_value(headline: str) -> str:
    """A headline without its measure's name ("val_loss_rise mean 0.04 (n = 3)" -> "mean 0.04 (n = 3)"): the
    compact cell's text, its column naming the claim."""
    name, _, value = headline.partition(" ")
    return value.removeprefix("= ") if value and name.isidentifier() else headline


def write_csv(path: Path, table: ClassTable) -> None:
    """One line per row (the notebook's first): name, file, times, problem, then verdict, headline, reason per claim."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        parts = ("verdict", "headline", "reason")
        writer.writerow(
            ["student", "file", "reference", "late", "wall_s", "peak_mib", "problem"]
            + [f"{c.id} {part}" for c in table.claims for part in parts]
        )
        for row in table.rows:
            r = row.result
            cells = [row.cells.get(c.id) for c in table.claims]
            writer.writerow(
                [
                    r.name,
                    r.file,
                    "yes" if r.reference else "",
                    "yes" if r.late else "",
                    "" if r.wall_s is None else f"{r.wall_s:.1f}",
                    "" if not r.peak_bytes else f"{r.peak_bytes / 2**20:.0f}",
                    r.problem,
                ]
                + [v for cell in cells for v in ((cell.kind, cell.headline, cell.reason) if cell else ("", "", ""))]
            )


def markdown(table: ClassTable, title: str, intro: str, figures: list[tuple[str, str]]) -> str:
    """The class page as Markdown: the notebook's claims, the summary, the table with numbered reasons, figures."""
    notes = table.footnotes()

    def cell_text(cell: Cell | None) -> str:
        if cell is None:
            return ""
        text = cell.kind + (f" · {cell.headline}" if cell.headline and cell.headline != "—" else "")
        return (text + (f" [{notes[cell.reason]}]" if cell.reason else "")).replace("|", "/")

    lines = [f"# {title}", "", intro, ""]
    if table.notebook and table.notebook_claims:
        lines += ["## The notebook's own models (once for the class)", "", "| claim | verdict |", "|---|---|"]
        if table.notebook.checked:
            lines += [f"| {c.id} | {cell_text(table.notebook.cells[c.id])} |" for c in table.notebook_claims]
        else:
            lines += [f"| all | {table.notebook.result.problem.replace('|', '/')} |"]
        lines.append("")
    kinds = table.count_kinds()
    counts = table.counts()
    lines += [
        f"## Summary ({len(table.students)} students)",
        "",
        "| claim | " + " | ".join(kinds) + " |",
        "|---" * (len(kinds) + 1) + "|",
    ]
    lines += [f"| {c.id} | " + " | ".join(str(counts[c.id][k]) for k in kinds) + " |" for c in table.claims]
    lines += ["", "## Students", "", "| student | time | " + " | ".join(c.id for c in table.claims) + " |"]
    lines.append("|---" * (len(table.claims) + 2) + "|")
    for row in table.rows:
        r = row.result
        name = f"{r.name} (reference)" if r.reference else f"{r.name} (late)" if r.late else r.name
        time = "" if r.wall_s is None else f"{r.wall_s:.0f} s"
        cells = [cell_text(row.cells.get(c.id)) for c in table.claims] if row.checked else [r.problem]
        lines.append(f"| {name} | {time} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    if notes:
        lines += ["", "Reasons:", ""] + [f"{n}. {reason}" for reason, n in notes.items()]
    for src, caption in figures:
        lines += ["", f"![{caption}]({src})", "", caption]
    return "\n".join(lines + [""])
