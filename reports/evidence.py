"""Loading and validation of the evidence.json written by the claim tests."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fixtures.paths import EVIDENCE, default_dirs
from fixtures.records import EVIDENCE_FILE, ClaimRecord, Document, RunRecord, SchemaError, Session, Taken


class EvidenceError(Exception):
    """Evidence that is missing or does not follow the contract; the message names the file."""


@dataclass
class Evidence:
    """The parsed evidence.json plus the directory its arrays/ live in."""

    path: Path
    session: Session
    runs: list[RunRecord]
    claims: list[ClaimRecord]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def newest(self) -> str | None:
        """The start time of the newest session that wrote this evidence."""
        return self.session.started

    def taken(self, claim: ClaimRecord) -> Taken:
        """When and where the claim's evidence was taken (older files: the file's one session)."""
        return claim.taken or Taken(session=self.newest, profile=self.session.profile)

    def is_older(self, claim: ClaimRecord) -> bool:
        """Whether the claim was kept from a session before the newest (it was not re-run then)."""
        return self.taken(claim).session != self.newest

    def is_newest(self, run: RunRecord) -> bool:
        """Whether the newest session used the run (older files record no session per run: all of them)."""
        return (run.session or self.newest) == self.newest

    def claim(self, claim_id: str) -> ClaimRecord | None:
        return next((c for c in self.claims if c.id == claim_id), None)

    def arrays(self, claim_id: str) -> dict[str, np.ndarray] | None:
        """The claim's npz arrays, or None when the claim, its arrays entry or the file is absent."""
        claim = self.claim(claim_id)
        if not claim or not claim.arrays or not (self.root / claim.arrays).is_file():
            return None
        try:
            with np.load(self.root / claim.arrays) as npz:
                return dict(npz)
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise EvidenceError(f"{self.root / claim.arrays}: unreadable arrays ({e})") from None


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


def display_verdict(claim: ClaimRecord) -> str:
    """The verdict as the report shows it: a refutation the suite already declared is a "known refutation"."""
    if claim.verdict == "refuted" and claim.known_refutation:
        return "known refutation"
    return str(claim.verdict)


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
        document = Document.parse(data)
    except SchemaError as e:
        raise EvidenceError(f"{file}: malformed evidence: {e}") from None
    return Evidence(file, document.session, document.runs, document.claims)
