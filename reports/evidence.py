"""Loading and validation of the evidence.json written by the claim tests."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fixtures.claim import Verdict
from fixtures.evidence import EVIDENCE_FILE, SCHEMA
from fixtures.paths import EVIDENCE, default_dirs

VERDICTS = tuple(v.value for v in Verdict)


class EvidenceError(Exception):
    """Evidence that is missing or does not follow the contract; the message names the file."""


@dataclass
class Evidence:
    """The parsed evidence.json plus the directory its arrays/ live in."""

    path: Path
    session: dict
    runs: list[dict]
    claims: list[dict]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def newest(self) -> str | None:
        """The start time of the newest session that wrote this evidence."""
        return self.session.get("started")

    def taken(self, claim: dict) -> dict:
        """When and where the claim's evidence was taken (older files: the file's one session)."""
        return claim.get("taken") or {"session": self.newest, "profile": self.session.get("profile")}

    def is_older(self, claim: dict) -> bool:
        """Whether the claim was kept from a session before the newest (it was not re-run then)."""
        return self.taken(claim).get("session") != self.newest

    def claim(self, claim_id: str) -> dict | None:
        return next((c for c in self.claims if c["id"] == claim_id), None)

    def arrays(self, claim_id: str) -> dict[str, np.ndarray] | None:
        """The claim's npz arrays, or None when the claim, its arrays entry or the file is absent."""
        claim = self.claim(claim_id)
        if not claim or not claim.get("arrays") or not (self.root / claim["arrays"]).is_file():
            return None
        try:
            with np.load(self.root / claim["arrays"]) as npz:
                return dict(npz)
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise EvidenceError(f"{self.root / claim['arrays']}: unreadable arrays ({e})") from None


def resolve(path: str | os.PathLike | None) -> Path:
    """The evidence.json to read: PATH (file or its directory), else $MNIST_CLAIMS_EVIDENCE, else the newer
    of the two default places (fixtures.paths: pytest's cache of this checkout, the per-user cache dir)."""
    chosen = path or os.environ.get("MNIST_CLAIMS_EVIDENCE")
    if chosen:
        p = Path(chosen)
        return p / EVIDENCE_FILE if p.is_dir() else p
    defaults = [d / EVIDENCE_FILE for d in default_dirs(EVIDENCE)]
    found = [p for p in defaults if p.is_file()]
    if not found:
        raise EvidenceError(f"no evidence found: looked in {' and '.join(map(str, defaults))}")
    return max(found, key=lambda p: p.stat().st_mtime)


def display_verdict(claim: dict) -> str:
    """The verdict as the report shows it: a refutation the suite already declared is a "known refutation"."""
    if claim["verdict"] == "refuted" and claim.get("known_refutation"):
        return "known refutation"
    return claim["verdict"]


def load(path: str | os.PathLike | None = None) -> Evidence:
    """Read and check the evidence; raise EvidenceError with a one-line reason otherwise."""
    file = resolve(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvidenceError(f"{file}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EvidenceError(f"{file}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise EvidenceError(f"{file}: not valid JSON ({e})") from None
    try:
        _check(data)
    except (EvidenceError, KeyError, TypeError, AttributeError) as e:
        raise EvidenceError(f"{file}: malformed evidence: {e}") from None
    return Evidence(file, data["session"], data["runs"], data["claims"])


def _require(ok: bool, problem: str) -> None:
    if not ok:
        raise EvidenceError(problem)


def _check(data: dict) -> None:
    _require(isinstance(data, dict), "top level is not an object")
    _require(data.get("schema") == SCHEMA, f"schema is {data.get('schema')!r}, expected {SCHEMA}")
    _require(isinstance(data.get("session"), dict), "'session' is not an object")
    _require(isinstance(data.get("runs"), list), "'runs' is not a list")
    _require(isinstance(data.get("claims"), list), "'claims' is not a list")
    for run in data["runs"]:
        missing = {"key", "label", "model", "batch_size", "epochs", "seed", "source"} - run.keys()
        _require(not missing, f"run {run.get('label', '?')!r} lacks {sorted(missing)}")
    for claim in data["claims"]:
        _require(isinstance(claim.get("id"), str), "a claim has no string 'id'")
        _require(claim.get("verdict") in VERDICTS, f"claim {claim['id']!r} has verdict {claim.get('verdict')!r}")
        statistics = claim.get("statistics") or {}
        _require(
            isinstance(statistics, dict) and all(isinstance(s, dict) for s in statistics.values()),
            f"claim {claim['id']!r}: 'statistics' is not an object of objects",
        )
