"""Tests of the HTML report (`python -m reports`) on a small hand-made evidence fixture."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from reports import regression
from reports.__main__ import main
from reports.build import SECTIONS
from reports.evidence import Evidence

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [0, 1, 2]
ARCH_IDS = ["arch-basic-param-counts", "arch-same-padding", "arch-conv-params-per-filter", "arch-dense-bottleneck",
            "arch-vs-mlp", "arch-improved-param-counts"]


# --- the fixture ---------------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return {"values": list(map(float, v)), "n": len(v), "mean": float(v.mean()), "sd": float(v.std(ddof=1)),
            "ci_low": float(v.mean() - half), "ci_high": float(v.mean() + half), "ci_method": "student-t 95%"}


def comparison(a: list[float], b: list[float]) -> dict:
    return {"a": summary(a), "b": summary(b), "diff": summary(np.subtract(a, b)), "p_a_better": 0.98,
            "p_a_better_ci": [0.9, 1.0], "t_pvalue": 0.004, "higher_is_better": True}


def history(epochs: int, seed: int, bs: int) -> dict:
    e = np.arange(1, epochs + 1)
    noise = np.random.default_rng(seed * 1000 + bs).normal(0, 0.004 * 64 / bs, epochs)
    loss = 0.15 / e + np.abs(noise)
    val_loss = 0.05 + 0.002 * (e - 3 - seed) ** 2 / epochs
    return {"loss": loss.tolist(), "accuracy": (1 - loss / 3).tolist(),
            "val_loss": val_loss.tolist(), "val_accuracy": (1 - val_loss / 4).tolist()}


def run(model: str, bs: int, epochs: int, seed: int, s_per_epoch: float, source: str = "trained") -> dict:
    h = history(epochs, seed, bs)
    return {"key": f"{model}-{bs}-{epochs}-{seed}-tf2.21", "label": f"{model} bs={bs} ep={epochs} seed={seed}",
            "model": model, "model_config": {"padding": "valid"} if model == "basic_cnn" else {}, "batch_size": bs,
            "epochs": epochs, "seed": seed, "source": source, "wall_s": s_per_epoch * epochs + 1,
            "s_per_epoch": s_per_epoch, "deterministic": True, "history": h, "epoch_s": [s_per_epoch] * epochs,
            "evaluation": {"test": {"loss": h["val_loss"][-1], "accuracy": h["val_accuracy"][-1] - 0.002},
                           "train": {"loss": h["loss"][-1], "accuracy": h["accuracy"][-1]},
                           "val": {"loss": h["val_loss"][-1], "accuracy": h["val_accuracy"][-1]}}}


def claim(cid: str, section: str, verdict: str = "holds", measured: dict | None = None, statistics: dict | None = None,
          known: str | None = None, runs: list[str] = (), arrays: bool = False) -> dict:
    outcome = {"holds": "passed", "refuted": "xfailed" if known else "failed", "inconclusive": "skipped"}[verdict]
    return {"id": cid, "section": section, "test": f"claims/test_{section}.py::test_{cid.replace('-', '_')}",
            "question": "Q: When does your network start to overfit? <How> to recognize it?" if cid == "overfitting-signature" else "",
            "quote": f"The notebook sentence that {cid} checks & its <context>.", "verdict": verdict,
            "known_refutation": known, "outcome": outcome, "rule": f"{cid} holds when the 95% CI is above the bound",
            "summary": f"{cid}: key numbers", "seeds": SEEDS, "measured": measured or {}, "statistics": statistics or {},
            "runs": list(runs), "arrays": f"arrays/{cid}.npz" if arrays else None}


LAYERS = [{"name": "conv2d", "type": "Conv2D", "output_shape": [None, 26, 26, 16], "params": 160},
          {"name": "max_pooling2d", "type": "MaxPooling2D", "output_shape": [None, 13, 13, 16], "params": 0},
          {"name": "flatten", "type": "Flatten", "output_shape": [None, 2704], "params": 0},
          {"name": "dense", "type": "Dense", "output_shape": [None, 100], "params": 270500},
          {"name": "dense_1", "type": "Dense", "output_shape": [None, 10], "params": 1010}]


def make_evidence() -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """An evidence dict covering every section, and the npz arrays of its claims."""
    runs = [run("basic_cnn", bs, 10, s, 40 / bs ** 0.5, "cached" if s == 0 else "trained") for bs in (16, 32, 64, 128) for s in SEEDS]
    runs += [run("improved_cnn", 64, 20, s, 6.0) for s in SEEDS] + [run("mlp", 64, 10, s, 1.0) for s in SEEDS]
    basic64 = [r["key"] for r in runs if r["model"] == "basic_cnn" and r["batch_size"] == 64]
    onset = [int(np.argmin(r["history"]["val_loss"])) + 1 for r in runs if r["key"] in basic64]
    rng = np.random.default_rng(0)
    claims = [
        claim("arch-basic-param-counts", "architecture", measured={"model": "Basic CNN", "layers": LAYERS}),
        claim("arch-same-padding", "architecture", measured={
            "valid": {"conv": [26, 26, 16], "pool": [13, 13, 16], "flatten": 2704, "dense_params": 270500},
            "same": {"conv": [28, 28, 16], "pool": [14, 14, 16], "flatten": 3136, "dense_params": 313700}}),
        claim("arch-conv-params-per-filter", "architecture", measured={"params_per_filter": 10}),
        claim("arch-dense-bottleneck", "architecture", measured={"largest": "dense", "share": 0.9957}),
        claim("arch-vs-mlp", "architecture", measured={"cnn": 271670, "mlp": 535818},
              statistics={"nan_ratio": summary([2.0, float("nan"), 2.0]), "inf_ratio": {**summary([1.0, 2.0]), "ci_high": float("inf")}}),
        claim("arch-improved-param-counts", "architecture", measured={"model": "Improved CNN", "layers": LAYERS[:2]}),
        claim("overfitting-signature", "training", "refuted", {"onset_epoch": onset},
              {"onset_epoch": summary(onset)}, known="val accuracy keeps rising while val loss rises", runs=basic64),
        claim("batch-small-unstable", "training", "refuted",
              {"instability": {str(bs): rng.uniform(0.01, 0.05, 3).tolist() for bs in (16, 32, 64, 128)}},
              {"instability_16_vs_128": comparison([0.04, 0.05, 0.045], [0.02, 0.025, 0.03])}),
        claim("cnn-vs-mlp-accuracy", "training", statistics={"test_accuracy": comparison([0.985, 0.987, 0.984], [0.978, 0.976, 0.979])}),
        claim("cnn-vs-mlp-time", "training", "inconclusive",
              {"s_per_epoch": {"basic_cnn": [5.0, 5.2, 4.9], "mlp": [1.0, 1.1, 0.9]}, "ratio": 5.0, "device": "cpu"},
              {"ratio": summary([5.0, 4.7, 5.4])}),
        claim("feature-maps-are-filters", "analysis", arrays=True),
        claim("pooling-maps", "analysis", arrays=True),
        claim("deeper-layer-shape", "analysis", arrays=True),
        claim("filters-detect-edges", "analysis", statistics={"score_gap": summary([0.2, 0.25, 0.22])}, arrays=True),
        claim("ambiguous-31727", "analysis", "inconclusive", {"label": 1}, arrays=True),
        claim("ambiguities-rare", "analysis", measured={"threshold": 0.9, "fraction": [0.012, 0.011, 0.013],
                                                          "error_rate": [0.3, 0.32, 0.29]},
              statistics={"fraction": summary([0.012, 0.011, 0.013]), "error_rate": summary([0.3, 0.32, 0.29])}, arrays=True),
        claim("deeper-features-specific", "analysis", statistics={"selectivity_gap": summary([0.1, 0.12, 0.09])}, arrays=True),
    ]
    filters = rng.normal(size=(3, 3, 1, 32))
    probs = rng.dirichlet(np.ones(10) * 0.3, size=6)
    arrays = {
        "feature-maps-are-filters": {"image": rng.uniform(size=(28, 28)), "filters": filters, "conv_maps": rng.uniform(size=(26, 26, 32))},
        "pooling-maps": {"pool_maps": rng.uniform(size=(13, 13, 32))},
        "deeper-layer-shape": {"conv2_maps": rng.uniform(size=(11, 11, 64))},
        "filters-detect-edges": {"filters": filters, "filters_init": rng.normal(size=(3, 3, 1, 32)), "score_trained": rng.uniform(0.5, 1, 32),
                                 "score_init": rng.uniform(0, 0.6, 32), "score_random": rng.uniform(0, 0.6, 200)},
        "ambiguous-31727": {"image": rng.uniform(size=(28, 28)), "probabilities": rng.dirichlet([1] * 4 + [5] + [1] * 5, size=3)},
        "ambiguities-rare": {"images": rng.integers(0, 255, (6, 28, 28), dtype=np.uint8), "labels": np.arange(6),
                             "probabilities": probs, "indices": np.arange(6) * 100},
        "deeper-features-specific": {"selectivity_conv1": rng.beta(2, 5, 32), "selectivity_conv2": rng.beta(4, 3, 64)},
    }
    session = {"started": "2026-11-29T22:30:00+00:00", "finished": "2026-11-29T23:10:00+00:00", "profile": "notebook",
               "seeds": SEEDS, "strict": False,
               "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "keras_backend": "tensorflow", "numpy": "2.4.6"},
               "device": {"cpu": "AMD EPYC test", "gpus": []},
               "data": {"source": "/data/mnist", "fingerprint": "ab" * 32, "checksums": {"train-images-idx3-ubyte.gz": "md5:f68b3c2d"}},
               "workers": 2}
    return {"schema": 1, "session": session, "runs": runs, "claims": claims}, arrays


def write(root: Path, data: dict, arrays: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write evidence.json and arrays/<claim>.npz under root (arrays only for claims present)."""
    (root / "arrays").mkdir(parents=True, exist_ok=True)
    present = {c["id"] for c in data["claims"]}
    for cid, arrs in arrays.items():
        if cid in present:
            np.savez(root / "arrays" / f"{cid}.npz", **arrs)
    (root / "evidence.json").write_text(json.dumps(data))
    return root / "evidence.json"


def as_evidence(data: dict) -> Evidence:
    return Evidence(Path("evidence.json"), data["session"], data["runs"], data["claims"])


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def section_html(html: str, sid: str) -> str:
    return html.split(f'<section id="sec-{sid}">', 1)[1].split("</section>", 1)[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full")
    write(root / "evidence", *make_evidence())
    assert main(["--evidence", str(root / "evidence"), "--out", str(root / "report")]) == 0
    return root / "report"


# --- the report ----------------------------------------------------------------------------


def test_report_has_every_section_and_claim_anchor(report: Path) -> None:
    html = (report / "index.html").read_text()
    for sid, title, _ in SECTIONS:
        assert f'<section id="sec-{sid}">' in html and f"<h2>{title}</h2>" in html
    for c in make_evidence()[0]["claims"]:
        assert f'<article class="claim" id="{c["id"]}">' in html and f'href="#{c["id"]}"' in html
    assert "No evidence recorded" not in html and "NOT evidence" not in html
    assert "&lt;context&gt;" in html and "<context>" not in html  # autoescaped
    assert "271,670" in html and "(None, 26, 26, 16)" in html  # Keras-like layer table
    assert "NaN" in html and "∞" in html  # non-finite statistics are shown, not crashed on
    assert "14 trained now" in html and "4 loaded from cache" in html  # seed 0 of each batch size is cached


def test_every_image_is_an_existing_png(report: Path) -> None:
    parser = _Images()
    parser.feed((report / "index.html").read_text())
    assert len(parser.srcs) >= 14
    for src in parser.srcs:
        assert not src.startswith(("/", "file:", "http")), src
        data = (report / src).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000, src


def test_verdict_table_labels_and_colours(report: Path) -> None:
    html = (report / "index.html").read_text()
    rows = dict(re.findall(r'<tr class="verdict-row" data-claim="([^"]+)">.*?<span class="badge (v-[\w-]+)">', html, re.S))
    assert rows["arch-basic-param-counts"] == "v-holds"
    assert rows["batch-small-unstable"] == "v-refuted"
    assert rows["overfitting-signature"] == "v-known-refutation"
    assert rows["cnn-vs-mlp-time"] == "v-inconclusive"
    for label in ("holds", "refuted", "known refutation", "inconclusive"):
        assert f'<span class="badge v-{label.replace(" ", "-")}">{label}</span>' in html
        assert re.search(rf"\.v-{label.replace(' ', '-')} {{ background: #\w+; }}", html)
    assert list(rows)[:6] == ARCH_IDS  # notebook order: architecture first


def test_missing_sections_say_no_evidence(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    data["claims"] = [c for c in data["claims"] if c["section"] == "architecture"]
    data["runs"] = []
    data["session"]["profile"] = "smoke"
    write(tmp_path / "ev", data, arrays)
    assert main(["--evidence", str(tmp_path / "ev"), "--out", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "index.html").read_text()
    for sid, _, _ in SECTIONS[1:]:
        assert "No evidence recorded for this section" in section_html(html, sid), sid
    assert "smoke profile: NOT evidence" in html


def test_missing_arrays_file_still_builds(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    data["claims"] = [c for c in data["claims"] if c["section"] == "analysis"]
    write(tmp_path / "ev", data, arrays)
    shutil.rmtree(tmp_path / "ev" / "arrays")
    assert main(["--evidence", str(tmp_path / "ev" / "evidence.json"), "--out", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "index.html").read_text()
    assert all("<img" not in section_html(html, sid) for sid in ("inside", "predictions", "specificity"))
    assert 'id="ambiguities-rare"' in html


@pytest.mark.parametrize("content, problem", [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    (json.dumps({"schema": 99}), "schema is 99"),
    (json.dumps({"schema": 1, "session": {}, "runs": [], "claims": [{"id": "x", "verdict": "maybe"}]}), "verdict 'maybe'"),
])
def test_bad_evidence_exits_2_with_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture, content: str | None,
                                                  problem: str) -> None:
    if content is not None:
        (tmp_path / "evidence.json").write_text(content)
    assert main(["--evidence", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "evidence.json") in err
    assert problem in err and "run `pytest claims` first" in err
    assert not (tmp_path / "out").exists()


def test_cli_subprocess_uses_env_default_and_never_imports_tensorflow(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    write(tmp_path / "ev", data, arrays)
    env = {**os.environ, "MNIST_CLAIMS_EVIDENCE": str(tmp_path / "ev")}
    code = ("import sys; from reports.__main__ import main; rc = main(sys.argv[1:]); "
            "assert not {'tensorflow', 'keras'} & set(sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "--out", "rep"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "rep" / "index.html")
    env["MNIST_CLAIMS_EVIDENCE"] = str(tmp_path / "nowhere")
    done = subprocess.run([sys.executable, "-m", "reports"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "nowhere" in done.stderr


# --- regression against a baseline ---------------------------------------------------------


def planted() -> tuple[dict, dict]:
    """A baseline and a current evidence differing in known ways."""
    base, _ = make_evidence()
    cur = copy.deepcopy(base)
    claims = {c["id"]: c for c in cur["claims"]}
    claims["arch-dense-bottleneck"]["verdict"] = "refuted"
    claims["overfitting-signature"]["known_refutation"] = None  # known refutation -> plain refutation
    claims["ambiguities-rare"]["statistics"]["fraction"] = summary([0.020, 0.021, 0.022])  # far outside its CI
    claims["ambiguities-rare"]["statistics"]["error_rate"] = summary([0.31, 0.30, 0.30])  # within its CI
    claims["cnn-vs-mlp-accuracy"]["statistics"]["test_accuracy"] = comparison([0.985, 0.987, 0.984], [0.958, 0.956, 0.959])
    for r in cur["runs"]:
        r["key"] += "-tf2.22"  # keys embed library versions: matching must not use them
    slow = next(r for r in cur["runs"] if r["model"] == "mlp" and r["seed"] == 1)
    slow["s_per_epoch"] *= 1.25
    next(r for r in cur["runs"] if r["model"] == "mlp" and r["seed"] == 2)["s_per_epoch"] *= 1.10
    cur["session"]["versions"]["tensorflow"] = "2.22.0"
    return base, cur


def test_regression_finds_exactly_the_planted_changes() -> None:
    base, cur = planted()
    changes = regression.compare(as_evidence(base), as_evidence(cur))
    assert {(v.claim_id, v.before, v.after) for v in changes.verdicts} == {
        ("arch-dense-bottleneck", "holds", "refuted"), ("overfitting-signature", "known refutation", "refuted")}
    assert changes.verdict_changed
    assert {(s.claim_id, s.statistic) for s in changes.statistics} == {
        ("ambiguities-rare", "fraction"), ("cnn-vs-mlp-accuracy", "test_accuracy.b"), ("cnn-vs-mlp-accuracy", "test_accuracy.diff")}
    assert [(r.label, round(r.ratio, 2)) for r in changes.slower_runs] == [("mlp bs=64 ep=10 seed=1", 1.25)]
    assert [(v.name, v.before, v.after) for v in changes.versions] == [("tensorflow", "2.21.0", "2.22.0")]
    assert changes.added == changes.removed == []


def test_regression_of_identical_evidence_is_empty() -> None:
    base, _ = make_evidence()
    changes = regression.compare(as_evidence(base), as_evidence(copy.deepcopy(base)))
    assert not (changes.verdicts or changes.statistics or changes.slower_runs or changes.versions)


def test_fail_on_change_exits_1_only_for_verdict_changes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base, cur = planted()
    _, arrays = make_evidence()
    keep = set(ARCH_IDS) | {"ambiguities-rare"}  # a small report keeps the test fast
    for d in (base, cur):
        d["claims"] = [c for c in d["claims"] if c["id"] in keep]
    write(tmp_path / "base", base, arrays)
    write(tmp_path / "cur", cur, arrays)
    args = ["--evidence", str(tmp_path / "cur"), "--out", str(tmp_path / "out"), "--fail-on-change"]
    assert main([*args, "--baseline", str(tmp_path / "base")]) == 1
    assert "verdict changed: arch-dense-bottleneck: holds -> refuted" in capsys.readouterr().err
    html = (tmp_path / "out" / "index.html").read_text()
    assert "Changes since baseline" in html and "2.22.0" in html and "+25 %" in html
    assert "overlap" in html  # the rule is stated

    base["claims"] = copy.deepcopy(cur["claims"])
    base["claims"][-1]["statistics"]["fraction"] = summary([0.012, 0.011, 0.013])  # only a metric differs now
    write(tmp_path / "base", base, arrays)
    assert main([*args, "--baseline", str(tmp_path / "base")]) == 0
    html = (tmp_path / "out" / "index.html").read_text()
    assert "No verdict changed." in html and "fraction" in section_html_changes(html)


def section_html_changes(html: str) -> str:
    return html.split('<section class="changes" id="changes">', 1)[1].split("</section>", 1)[0]


# --- in a real browser ---------------------------------------------------------------------


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="playwright not installed (optional extra)")
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium)")
    from reports import browser_check

    shot = tmp_path / "page.png"
    assert browser_check.main([str(report), "--screenshot", str(shot)]) == 0
    assert shot.read_bytes().startswith(b"\x89PNG")
    broken = shutil.copytree(report, tmp_path / "broken")
    (broken / "selectivity.png").unlink()
    assert any("selectivity.png" in p for p in browser_check.check(broken, tmp_path / "broken.png"))
