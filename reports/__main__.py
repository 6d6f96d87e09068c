"""`python -m reports`: build the HTML report from the evidence of the last `pytest claims` session,
with `--matrix`, a verdict matrix across several evidence files, or with `--history`, each claim across nights."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fixtures.records import SCHEMA, Document, differences
from reports import history, matrix
from reports.build import build
from reports.evidence import Evidence, EvidenceError, load
from reports.regression import compare


def main(argv: list[str] | None = None) -> int:
    """Build the report; 2 on missing/malformed evidence, 1 with --fail-on-change when a verdict changed."""
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument(
        "--evidence",
        help="evidence.json or its directory (default: $MNIST_CLAIMS_EVIDENCE, else the "
        "newer of .pytest_cache/d/claims-evidence/evidence.json here and the per-user cache dir's)",
    )
    parser.add_argument("--out", default="claims-report", type=Path, help="output directory (default: claims-report)")
    parser.add_argument("--baseline", help="a previous evidence.json (or its directory) to compare with")
    parser.add_argument(
        "--fail-on-change",
        action="store_true",
        help="exit 1 when a verdict differs from the baseline significantly (Welch's t-test on the "
        "per-seed headline values, or untestable); changes within noise are only reported",
    )
    parser.add_argument(
        "--fail-on-any-change",
        action="store_true",
        help="exit 1 when any verdict differs from the baseline, within noise or not",
    )
    parser.add_argument(
        "--fail-on-any-value-change",
        action="store_true",
        help="exit 1 when any recorded value differs from the baseline, when and how fast it was taken aside "
        "(fixtures.records.differences): a refactor's check that it changed no result",
    )
    parser.add_argument(
        "--matrix",
        nargs="+",
        metavar="[LABEL=]EVIDENCE",
        help="build DIR/matrix.html and DIR/matrix.md: one row per claim, one column per evidence "
        "file (labelled by backend, versions and device unless LABEL= is given)",
    )
    parser.add_argument(
        "--history",
        type=Path,
        metavar="DIR",
        help=f"build OUT/history.html and OUT/history.md from {history.LAYOUT}: each claim's headline per night and "
        "environment, coloured by verdict, significant verdict changes from one night to the next marked",
    )
    args = parser.parse_args(argv)
    if args.history and (args.matrix or args.baseline or args.evidence):
        parser.error("--history reads its folder only; it has no --matrix, --evidence or --baseline")
    if (args.fail_on_change or args.fail_on_any_change or args.fail_on_any_value_change) and not args.baseline:
        parser.error("--fail-on-change, --fail-on-any-change and --fail-on-any-value-change need --baseline")
    if args.matrix and (args.baseline or args.evidence):
        parser.error("--matrix takes its evidence files as arguments; it has no --evidence or --baseline")
    try:
        if args.history:
            for path in history.build(args.history, args.out):
                print(path.resolve())
            return 0
        if args.matrix:
            html, markdown = matrix.build(matrix.columns(args.matrix), args.out)
            print(html.resolve())
            print(markdown.resolve())
            return 0
        evidence = load(args.evidence)
        print(f"evidence: {evidence.path}", file=sys.stderr)  # a default may be one of two places: say which
        baseline = load(args.baseline) if args.baseline else None
        index = build(evidence, args.out, baseline)
    except EvidenceError as e:
        print(f"error: {e} — run `pytest claims` first", file=sys.stderr)
        return 2
    print(index.resolve())
    return against_baseline(baseline, evidence, args) if baseline else 0


def against_baseline(baseline: Evidence, evidence: Evidence, args: argparse.Namespace) -> int:
    """Print each verdict (and, with --fail-on-any-value-change, each value) that changed since `baseline`; 1 when
    one the --fail-on options name did, else 0."""
    changes = compare(baseline, evidence)
    for v in changes.verdicts:
        kind = "significant" if v.significant else "within noise"
        print(f"verdict changed ({kind}): {v.claim_id}: {v.before} -> {v.after} [{v.test.text()}]", file=sys.stderr)
    failing = changes.verdicts if args.fail_on_any_change else changes.significant if args.fail_on_change else []
    values = differences(document(baseline), document(evidence)) if args.fail_on_any_value_change else []
    for line in values:
        print(f"value changed: {line}", file=sys.stderr)
    return 1 if failing or values else 0


def document(evidence: Evidence) -> Document:
    """The records `evidence` was loaded from, as `differences` compares them."""
    return Document(SCHEMA, evidence.session, evidence.runs, evidence.claims)


if __name__ == "__main__":
    sys.exit(main())
