"""Planted evidence for the report tests: every section, claim kind and verdict, with arrays to draw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from fixtures.claim import Ruling, Verdict
from fixtures.records import Document
from reports.evidence import Evidence

REPO = Path(__file__).resolve().parent.parent


def claims_project(pytester: pytest.Pytester, **modules: str) -> pytest.Pytester:
    """A throwaway pytest project with this repo's conftest and the given planted claim modules."""
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makepyfile(**modules)
    pytester.makeini(f"[pytest]\npythonpath = {REPO}\nmarkers = claim(id): a claim\n")
    return pytester


def planted(verdict: Verdict) -> Ruling:
    """What a planted claim's rule decides: `verdict`, with a one-value headline and the rule "r"."""
    return Ruling(
        Verdict(verdict), {"name": "planted", "values": [1.0], "higher_is_better": None, "text": ""}, rule="r"
    )


SEEDS = [0, 1, 2]
ARCH_IDS = [
    "arch-basic-param-counts",
    "arch-same-padding",
    "arch-conv-params-per-filter",
    "arch-dense-bottleneck",
    "arch-vs-mlp",
    "arch-improved-param-counts",
]


def summary(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return {
        "values": list(map(float, v)),
        "n": len(v),
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)),
        "ci_low": float(v.mean() - half),
        "ci_high": float(v.mean() + half),
        "ci_method": "student-t 95%",
    }


def comparison(a: list[float], b: list[float]) -> dict:
    return {
        "a": summary(a),
        "b": summary(b),
        "diff": summary(np.subtract(a, b)),
        "p_a_better": 0.98,
        "p_a_better_ci": [0.9, 1.0],
        "t_pvalue": 0.004,
        "higher_is_better": True,
    }


def history(epochs: int, seed: int, bs: int) -> dict:
    e = np.arange(1, epochs + 1)
    noise = np.random.default_rng(seed * 1000 + bs).normal(0, 0.004 * 64 / bs, epochs)
    loss = 0.15 / e + np.abs(noise)
    val_loss = 0.05 + 0.002 * (e - 3 - seed) ** 2 / epochs
    return {
        "loss": loss.tolist(),
        "accuracy": (1 - loss / 3).tolist(),
        "val_loss": val_loss.tolist(),
        "val_accuracy": (1 - val_loss / 4).tolist(),
    }


def run(model: str, bs: int, epochs: int, seed: int, s_per_epoch: float, source: str = "trained") -> dict:
    h = history(epochs, seed, bs)
    return {
        "key": f"{model}-{bs}-{epochs}-{seed}-tf2.21",
        "label": f"{model} bs={bs} ep={epochs} seed={seed}",
        "model": model,
        "model_config": {"padding": "valid"} if model == "basic_cnn" else {},
        "batch_size": bs,
        "epochs": epochs,
        "seed": seed,
        "source": source,
        "wall_s": s_per_epoch * epochs + 1,
        "s_per_epoch": s_per_epoch,
        "deterministic": True,
        "history": h,
        "epoch_s": [s_per_epoch] * epochs,
        "evaluation": {
            "test": {"loss": h["val_loss"][-1], "accuracy": h["val_accuracy"][-1] - 0.002},
            "train": {"loss": h["loss"][-1], "accuracy": h["accuracy"][-1]},
            "val": {"loss": h["val_loss"][-1], "accuracy": h["val_accuracy"][-1]},
        },
    }


def claim(
    cid: str,
    section: str,
    verdict: str = "holds",
    measured: dict | None = None,
    statistics: dict | None = None,
    known: str | None = None,
    runs: list[str] = (),
    arrays: bool = False,
) -> dict:
    outcome = {"holds": "passed", "refuted": "xfailed" if known else "failed", "inconclusive": "skipped"}[verdict]
    return {
        "id": cid,
        "section": section,
        "test": f"claims/test_{section}.py::test_{cid.replace('-', '_')}",
        "question": "Q: When does your network start to overfit? <How> to recognize it?"
        if cid == "overfitting-signature"
        else "",
        "quote": f"The notebook sentence that {cid} checks & its <context>.",
        "verdict": verdict,
        "known_refutation": known,
        "outcome": outcome,
        "rule": f"{cid} holds when the 95% CI is above the bound",
        "summary": f"{cid}: key numbers",
        "seeds": SEEDS,
        "measured": measured or {},
        "statistics": statistics or {},
        "runs": list(runs),
        "arrays": f"arrays/{cid}.npz" if arrays else None,
    }


LAYERS = [
    {"name": "conv2d", "type": "Conv2D", "output_shape": [None, 26, 26, 16], "params": 160},
    {"name": "max_pooling2d", "type": "MaxPooling2D", "output_shape": [None, 13, 13, 16], "params": 0},
    {"name": "flatten", "type": "Flatten", "output_shape": [None, 2704], "params": 0},
    {"name": "dense", "type": "Dense", "output_shape": [None, 100], "params": 270500},
    {"name": "dense_1", "type": "Dense", "output_shape": [None, 10], "params": 1010},
]


def make_evidence() -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """An evidence dict covering every section, and the npz arrays of its claims."""
    runs = [
        run("basic_cnn", bs, 10, s, 40 / bs**0.5, "cached" if s == 0 else "trained")
        for bs in (16, 32, 64, 128)
        for s in SEEDS
    ]
    runs += [run("improved_cnn", 64, 20, s, 6.0) for s in SEEDS] + [run("mlp", 64, 10, s, 1.0) for s in SEEDS]
    basic64 = [r["key"] for r in runs if r["model"] == "basic_cnn" and r["batch_size"] == 64]
    onset = [int(np.argmin(r["history"]["val_loss"])) + 1 for r in runs if r["key"] in basic64]
    rng = np.random.default_rng(0)
    claims = [
        claim("arch-basic-param-counts", "architecture", measured={"model": "Basic CNN", "layers": LAYERS}),
        claim(
            "arch-same-padding",
            "architecture",
            measured={
                "valid": {"conv": [26, 26, 16], "pool": [13, 13, 16], "flatten": 2704, "dense_params": 270500},
                "same": {"conv": [28, 28, 16], "pool": [14, 14, 16], "flatten": 3136, "dense_params": 313700},
            },
        ),
        claim("arch-conv-params-per-filter", "architecture", measured={"params_per_filter": 10}),
        claim("arch-dense-bottleneck", "architecture", measured={"largest": "dense", "share": 0.9957}),
        claim(
            "arch-vs-mlp",
            "architecture",
            measured={"cnn": 271670, "mlp": 535818},
            statistics={
                "nan_ratio": summary([2.0, float("nan"), 2.0]),
                "inf_ratio": {**summary([1.0, 2.0]), "ci_high": float("inf")},
            },
        ),
        claim("arch-improved-param-counts", "architecture", measured={"model": "Improved CNN", "layers": LAYERS[:2]}),
        claim(
            "overfitting-signature",
            "training",
            "refuted",
            {"onset_epoch": onset},
            {"onset_epoch": summary(onset)},
            known="val accuracy keeps rising while val loss rises",
            runs=basic64,
        ),
        claim(
            "batch-small-unstable",
            "training",
            "refuted",
            {"instability": {str(bs): rng.uniform(0.01, 0.05, 3).tolist() for bs in (16, 32, 64, 128)}},
            {"instability_16_vs_128": comparison([0.04, 0.05, 0.045], [0.02, 0.025, 0.03])},
        ),
        claim(
            "improved-99",
            "training",
            statistics={"test_accuracy": summary([0.9912, 0.9905, 0.9921])},
            runs=[r["key"] for r in runs if r["model"] == "improved_cnn"],
        ),
        claim(
            "cnn-vs-mlp-accuracy",
            "training",
            statistics={"test_accuracy": comparison([0.985, 0.987, 0.984], [0.978, 0.976, 0.979])},
        ),
        claim(
            "cnn-vs-mlp-time",
            "training",
            "inconclusive",
            {
                "s_per_epoch": {"basic_cnn": [5.0, 5.2, 4.9], "mlp": [1.0, 1.1, 0.9]},
                "cpu_ratio": [5.0, 4.7, 5.4],
                "threshold": 2.0,
                "device": "cpu",
            },
            {"ratio": summary([5.0, 4.7, 5.4])},
        ),
        claim("feature-maps-are-filters", "analysis", arrays=True),
        claim("pooling-maps", "analysis", arrays=True),
        claim("deeper-layer-shape", "analysis", arrays=True),
        claim("filters-detect-edges", "analysis", statistics={"score_gap": summary([0.2, 0.25, 0.22])}, arrays=True),
        claim("ambiguous-31727", "analysis", "inconclusive", {"label": 1}, arrays=True),
        claim(
            "ambiguities-rare",
            "analysis",
            measured={"threshold": 0.9, "fraction": [0.012, 0.011, 0.013], "error_rate": [0.3, 0.32, 0.29]},
            statistics={"fraction": summary([0.012, 0.011, 0.013]), "error_rate": summary([0.3, 0.32, 0.29])},
            arrays=True,
        ),
        claim(
            "deeper-features-specific",
            "analysis",
            statistics={"selectivity_gap": summary([0.1, 0.12, 0.09])},
            arrays=True,
        ),
    ]
    headlines = {  # the quantity each claim decides on (common.md), per seed or one structural value
        "arch-dense-bottleneck": ("dense share of parameters", [0.9957]),
        "overfitting-signature": ("val loss rise", [0.010, 0.011, 0.012]),
        "cnn-vs-mlp-time": ("CNN/MLP time ratio", [5.0, 4.7, 5.4]),
        "cnn-vs-mlp-accuracy": ("accuracy CNN - MLP", [0.007, 0.011, 0.005]),
    }
    for c in claims:
        if c["id"] in headlines:
            name, values = headlines[c["id"]]
            c["headline"] = {"name": name, "values": values, "higher_is_better": True, "text": f"{name} per seed"}
    time_claim = next(c for c in claims if c["id"] == "cnn-vs-mlp-time")
    time_claim["looks"] = [
        {"n": 3, "statistic": 1.1, "p": 0.16, "alpha": 0.0167, "verdict": "inconclusive"},
        {"n": 5, "statistic": 1.3, "p": 0.12, "alpha": 0.0167, "verdict": "inconclusive"},
    ]
    time_claim["looks_unit"] = "rounds"
    time_claim["detectable"] = {"effect": 0.83, "seeds_needed": 17, "observed": 0.31, "power": 0.8}
    filters = rng.normal(size=(3, 3, 1, 32))
    probs = rng.dirichlet(np.ones(10) * 0.3, size=6)
    arrays = {
        "feature-maps-are-filters": {
            "image": rng.uniform(size=(28, 28)),
            "filters": filters,
            "conv_maps": rng.uniform(size=(26, 26, 32)),
        },
        "pooling-maps": {"pool_maps": rng.uniform(size=(13, 13, 32))},
        "deeper-layer-shape": {"conv2_maps": rng.uniform(size=(11, 11, 64))},
        "filters-detect-edges": {
            "filters": filters,
            "filters_init": rng.normal(size=(3, 3, 1, 32)),
            "score_trained": rng.uniform(0.5, 1, 32),
            "score_init": rng.uniform(0, 0.6, 32),
            "score_random": rng.uniform(0, 0.6, 200),
        },
        "ambiguous-31727": {
            "image": rng.uniform(size=(28, 28)),
            "probabilities": rng.dirichlet([1] * 4 + [5] + [1] * 5, size=3),
        },
        "ambiguities-rare": {
            "images": rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
            "labels": np.arange(6),
            "probabilities": probs,
            "indices": np.arange(6) * 100,
        },
        "deeper-features-specific": {"selectivity_conv1": rng.beta(2, 5, 32), "selectivity_conv2": rng.beta(4, 3, 64)},
    }
    session = {
        "started": "2026-11-29T22:30:00+00:00",
        "finished": "2026-11-29T23:10:00+00:00",
        "profile": "notebook",
        "seeds": SEEDS,
        "strict": False,
        "versions": {
            "python": "3.11.7",
            "tensorflow": "2.21.0",
            "keras": "3.15.1",
            "keras_backend": "tensorflow",
            "numpy": "2.4.6",
        },
        "device": {"cpu": "AMD EPYC test", "gpus": []},
        "data": {
            "source": "/data/mnist",
            "fingerprint": "ab" * 32,
            "checksums": {"train-images-idx3-ubyte.gz": "md5:f68b3c2d"},
        },
        "workers": 2,
    }
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
    """Planted evidence as `reports.evidence.load` gives it (its records, checked against the schema)."""
    document = Document.parse(data)
    return Evidence(Path("evidence.json"), document.session, document.runs, document.claims)
