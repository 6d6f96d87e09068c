"""`python -m reports`: build the HTML report from the evidence of the last `pytest claims` session."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.build import build
from reports.evidence import EvidenceError, load
from reports.regression import compare


def main(argv: list[str] | None = None) -> int:
    """Build the report; 2 on missing/malformed evidence, 1 with --fail-on-change when a verdict changed."""
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("--evidence", help="evidence.json or its directory (default: $MNIST_CLAIMS_EVIDENCE, "
                        "else .pytest_cache/d/claims-evidence/evidence.json in the repository)")
    parser.add_argument("--out", default="claims-report", type=Path, help="output directory (default: claims-report)")
    parser.add_argument("--baseline", help="a previous evidence.json (or its directory) to compare with")
    parser.add_argument("--fail-on-change", action="store_true", help="exit 1 when a verdict differs from the baseline")
    args = parser.parse_args(argv)
    if args.fail_on_change and not args.baseline:
        parser.error("--fail-on-change needs --baseline")
    try:
        evidence = load(args.evidence)
        baseline = load(args.baseline) if args.baseline else None
        index = build(evidence, args.out, baseline)
    except EvidenceError as e:
        print(f"error: {e} — run `pytest claims` first", file=sys.stderr)
        return 2
    print(index.resolve())
    if args.fail_on_change and baseline:
        changed = compare(baseline, evidence).verdicts
        for v in changed:
            print(f"verdict changed: {v.claim_id}: {v.before} -> {v.after}", file=sys.stderr)
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
