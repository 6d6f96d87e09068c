"""A student's feedback: the report builder on their session's evidence, as one self-contained HTML file to send.

As nbgrader's feedback step hands back one file per student, feedback.html holds its figures inline (PNG data
URIs) and no link to another local file, so it survives being mailed or uploaded to an LMS.
"""

from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path

from reports import evidence
from reports.build import build

FEEDBACK_FILE = "feedback.html"
IMAGE = re.compile(r'(<img\b[^>]*\bsrc=")([^":]+\.png)(")')
"""An <img> whose source is a local PNG (the report builder's figures): the ones to inline."""


def write(directory: Path) -> Path | None:
    """Build `directory`/feedback.html from the session's evidence.json there; None when it left none."""
    if not (directory / "evidence.json").is_file():
        return None
    with tempfile.TemporaryDirectory(prefix="feedback-") as scratch:
        index = build(evidence.load(directory / "evidence.json"), Path(scratch))
        html = inline_images(index.read_text(encoding="utf-8"), index.parent)
    path = directory / FEEDBACK_FILE
    path.write_text(html, encoding="utf-8")
    return path


def inline_images(html: str, folder: Path) -> str:
    """`html` with each local PNG it shows (relative to `folder`) replaced by its data URI."""

    def data_uri(match: re.Match[str]) -> str:
        png = base64.b64encode((folder / match[2]).read_bytes()).decode("ascii")
        return f"{match[1]}data:image/png;base64,{png}{match[3]}"

    return IMAGE.sub(data_uri, html)
