"""Flakiness check: rerun the claims K times and fail if any claim's verdict is not the same in all.

    python -m reports.flakiness --reruns 3 -- claims -n 2

Each rerun is its own `python -m pytest ARGS --claims-evidence DIR/rerun-I` session (on a warm
run cache no training happens, so a differing verdict comes from the claim, not its runs); the
claims are matched by test id across the reruns' evidence files. Exit status: 0 when every claim
has one verdict in every rerun, 1 when some differ (each is named, with its summaries), 2 when a
rerun did not finish its tests (pytest error, or no evidence written).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from fixtures.records import EVIDENCE_FILE, ClaimRecord, Document, SchemaError

PYTEST_RAN_TESTS = (0, 1)  # all passed / some failed: a refuted claim fails, and that is a verdict


class RerunFailed(Exception):
    """A rerun that did not finish its tests, so its verdicts cannot be compared."""


def rerun(pytest_args: Sequence[str], evidence_dir: Path) -> tuple[dict[str, ClaimRecord], str]:
    """One pytest session writing its evidence to `evidence_dir`: its claims by test id, and its last line."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args, f"--claims-evidence={evidence_dir}"],
        capture_output=True,
        text=True,
    )
    output = (done.stdout + done.stderr).strip()
    evidence = evidence_dir / EVIDENCE_FILE
    if done.returncode not in PYTEST_RAN_TESTS or not evidence.is_file():
        raise RerunFailed(
            f"pytest exited {done.returncode} without comparable evidence; its output ends:\n"
            + "\n".join(output.splitlines()[-20:])
        )
    try:
        claims = Document.parse(json.loads(evidence.read_text())).claims
    except SchemaError as e:
        raise RerunFailed(f"{evidence}: malformed evidence: {e}") from None
    return {c.test: c for c in claims}, output.splitlines()[-1] if output else ""


def differences(sessions: Sequence[dict[str, ClaimRecord]]) -> list[str]:
    """One report per claim whose verdict is not the same in every session ("missing": not recorded)."""
    reports = []
    for test in sorted(set().union(*sessions)):
        records = [s.get(test) for s in sessions]
        verdicts = [r.verdict if r else "missing" for r in records]
        if len(set(verdicts)) == 1:
            continue
        claim_id = next(r.id for r in records if r)
        lines = [f"FLAKY {claim_id} ({test}): " + ", ".join(f"{v} x{n}" for v, n in Counter(verdicts).items())]
        lines += [
            f"  rerun {i}: {v}: {r.summary if r else 'no verdict recorded'}"
            for i, (v, r) in enumerate(zip(verdicts, records, strict=True), 1)
        ]
        reports.append("\n".join(lines))
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    """Run the reruns, print one line per rerun and every flaky claim; the exit status says which."""
    parser = argparse.ArgumentParser(prog="python -m reports.flakiness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reruns", type=int, default=3, help="pytest sessions to compare (default 3)")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep each rerun's evidence in DIR/rerun-I (default: a temporary dir)"
    )
    parser.add_argument(
        "pytest_args",
        nargs="*",
        default=["claims"],
        help="after --: the pytest arguments of each rerun (default: claims)",
    )
    options = parser.parse_args(argv)
    if options.reruns < 2:
        parser.error("--reruns must be at least 2 to compare anything")
    with tempfile.TemporaryDirectory(prefix="flakiness-") as scratch:
        root = options.keep or Path(scratch)
        sessions = []
        for i in range(1, options.reruns + 1):
            start = time.perf_counter()
            try:
                claims, last_line = rerun(options.pytest_args, root / f"rerun-{i}")
            except RerunFailed as e:
                print(f"rerun {i}/{options.reruns}: {e}")
                return 2
            counts = Counter(c.verdict for c in claims.values())
            print(
                f"rerun {i}/{options.reruns}: {len(claims)} claims in {time.perf_counter() - start:.0f}s: "
                + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
                + f"  [{last_line.strip('= ')}]",
                flush=True,
            )
            sessions.append(claims)
    flaky = differences(sessions)
    print(
        "\n".join(flaky)
        if flaky
        else f"stable: each of {len(set().union(*sessions))} claims had the same verdict in all {len(sessions)} reruns"
    )
    return 1 if flaky else 0


if __name__ == "__main__":
    sys.exit(main())
