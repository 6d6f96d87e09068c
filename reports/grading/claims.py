"""Which claims depend on the student, in the order an instructor reads them, and what each session costs.

`python -m reports.grading.claims OUT.json [pytest options]` collects the claims with the options the
students' sessions get and writes, per claim, its id, test and declared runs (`runs=(recipe, ...)`: model,
key, expected seconds by the session plan's cost model, cached or not), computed by the suite's own run store.
A claim is the student's when one of its declared runs is of the replaced model; the others are about the
notebook's own models and run once for the class. The collection runs in a child process, so the grader
itself never imports Keras.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reports.build import SECTIONS, section_of

SECTION_ORDER = [anchor for anchor, _, _ in SECTIONS]


@dataclass(frozen=True)
class ClaimInfo:
    """One selected claim as collected: id, pytest node id, notebook section, quote and declared runs."""

    id: str
    nodeid: str
    section: str
    quote: str
    runs: tuple[dict[str, Any], ...]  # key, model, label, cost_s, cached, spec (the RunSpec's fields)

    def uses(self, model: str) -> bool:
        """Whether one of its declared runs is of `model`: then a student replacing `model` changes it."""
        return any(r["model"] == model for r in self.runs)

    @property
    def junit_name(self) -> tuple[str, str]:
        """(classname, name) of this test in pytest's JUnit XML."""
        path, _, name = self.nodeid.partition("::")
        return path.removesuffix(".py").replace("/", "."), name


@dataclass(frozen=True)
class ClassPlan:
    """The selected claims in collection order, the profile and the seeds of the sessions."""

    profile: str
    seeds: int
    workers: int  # xdist workers of each session (0: none)
    claims: tuple[ClaimInfo, ...]
    cache: str = ""  # the runs cache of the sessions
    steps_per_execution: int = 1  # the sessions' training steps per call into the backend

    @classmethod
    def read(cls, path: Path) -> ClassPlan:
        """The plan the collection child wrote (PlanWriter), its JSON lists back as the tuples declared."""
        data = json.loads(path.read_text())
        return cls(
            data["profile"],
            data["seeds"],
            data["workers"],
            tuple(ClaimInfo(**{**c, "runs": tuple(c["runs"])}) for c in data["claims"]),
            data.get("cache", ""),
            data.get("steps_per_execution", 1),
        )

    def ordered(self, claims: list[ClaimInfo]) -> list[ClaimInfo]:
        """In the notebook's order: by report section (architecture, training, ..., analysis), then as collected."""
        index = {c.id: i for i, c in enumerate(self.claims)}
        return sorted(claims, key=lambda c: (SECTION_ORDER.index(section_of(c)), index[c.id]))

    def of_student(self, model: str) -> list[ClaimInfo]:
        """The claims that use the replaced model, in reading order (the improved CNN's own come first)."""
        return self.ordered([c for c in self.claims if c.uses(model)])

    def of_notebook(self, model: str) -> list[ClaimInfo]:
        """The claims about the notebook's own models only, in reading order."""
        return self.ordered([c for c in self.claims if not c.uses(model)])

    def runs_of(self, model: str) -> list[dict[str, Any]]:
        """The declared runs of `model`, once each: what a student's session trains with the student's model."""
        return list({r["key"]: r for c in self.claims for r in c.runs if r["model"] == model}.values())

    def student_cost_s(self, model: str) -> float:
        """Expected training seconds of one student's session at the notebook's model's cost, none of its runs
        cached: what the default time limit allows for."""
        return sum(r["cost_s"] for r in self.runs_of(model))

    def baseline_cost_s(self) -> float:
        """Expected training seconds of the notebook's session: its runs not in the cache yet."""
        runs = {r["key"]: r for c in self.claims for r in c.runs if not r["cached"]}
        return sum(r["cost_s"] for r in runs.values())


class PlanWriter:
    """Plugin for the collection child: after collection, write the selected claims and their runs."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from fixtures.plan import expected_s, measured_step_s
        from fixtures.session import Context

        context = Context.of(session.config)
        items = [(item, item.get_closest_marker("claim")) for item in session.items]
        items = [(item, marker) for item, marker in items if marker is not None and marker.args]
        seeds = list(range(context.seed_plan[-1][0]))  # --seeds auto: the last look's, the most a session trains
        declared = any(marker.kwargs.get("runs") for _, marker in items)
        store = context.store if declared else None  # loads MNIST; raises MnistError
        measured = measured_step_s(store) if store else {}
        claims = []
        for item, marker in items:
            specs = [spec for fn in marker.kwargs.get("runs", ()) for spec in fn(store, seeds)] if store else []
            runs = [
                {
                    "key": s.key,
                    "model": s.model,
                    "label": s.label,
                    "cost_s": round(expected_s(s, measured, len(store.data.X_train)), 1),
                    "cached": store.cache.is_cached(s.key),
                    "spec": dataclasses.asdict(s),
                }
                for s in specs
            ]
            doc = (getattr(item, "function", None).__doc__ or "").strip()
            claims.append(
                {
                    "id": marker.args[0],
                    "nodeid": item.nodeid,
                    "section": Path(str(item.path)).stem.removeprefix("test_"),
                    "quote": " ".join(doc.split("\n\n")[0].split()),
                    "runs": runs,
                }
            )
        plan = {
            "profile": context.profile.name,
            "seeds": len(seeds),
            "workers": context.config.getoption("numprocesses", None) or 0,
            "claims": claims,
            "cache": str(context.runs_dir),
            "steps_per_execution": store.steps_per_execution if store else 1,
        }
        self.out.write_text(json.dumps(plan, indent=1))


def collect(pytest_args: list[str], out: Path, cwd: Path, env: dict[str, str]) -> ClassPlan:
    """Collect the claims in a child process with `pytest_args`; raise RuntimeError with pytest's last lines."""
    command = [sys.executable, "-m", "reports.grading.claims", str(out), *pytest_args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        lines = (done.stdout + done.stderr).strip().splitlines()
        raise RuntimeError(f"collecting the claims failed (pytest exited {done.returncode}): " + " | ".join(lines[-3:]))
    return ClassPlan.read(out)


def main(argv: list[str] | None = None) -> int:
    """The collection child: `OUT.json [pytest options]`."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0])
    out.unlink(missing_ok=True)
    return int(pytest.main(["claims", "--collect-only", "-q", *args[1:]], plugins=[PlanWriter(out)]))


if __name__ == "__main__":
    sys.exit(main())
