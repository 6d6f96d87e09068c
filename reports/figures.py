"""The report's PNG figures, one function per figure (None where the evidence cannot draw it), gathered in one
function per report section (the figures it could draw, in the report's order)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fixtures.records import ClaimRecord, Look, RunRecord  # noqa: E402
from fixtures.stats import summarize  # noqa: E402
from reports.evidence import Evidence, display_verdict  # noqa: E402

DPI = 80
TRAIN, VAL = "tab:red", "tab:blue"


@dataclass(frozen=True)
class Figure:
    src: str
    caption: str


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean of the finite values and the half-width of its Student-t 95% CI (0 for fewer than two)."""
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return float("nan"), 0.0
    summary = summarize(finite)
    return summary.mean, summary.ci_high - summary.mean


def run_groups(runs: list[RunRecord]) -> dict[tuple, list[RunRecord]]:
    """Runs grouped over seeds by (model, model_config, batch_size, epochs)."""
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[r.model, json.dumps(r.model_config, sort_keys=True), r.batch_size, r.epochs].append(r)
    return dict(groups)


def _save(fig: plt.Figure, out: Path, name: str, caption: str) -> Figure:
    fig.savefig(out / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return Figure(name, caption)


def _curves(runs: list[RunRecord], metric: str) -> np.ndarray:
    """(seeds, epochs) array of one history metric, cut to the shortest history."""
    rows = [r.history.get(metric) or [] for r in runs]
    n = min(len(row) for row in rows)
    return np.array([row[:n] for row in rows], dtype=float)


def _band(ax: plt.Axes, curves: np.ndarray, label: str, color: str | None = None) -> None:
    """Mean over seeds as a line, min–max over seeds as a shaded band."""
    x = np.arange(1, curves.shape[1] + 1)
    (line,) = ax.plot(x, curves.mean(axis=0), color=color, label=label)
    ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)


def _grid(maps: np.ndarray, ncols: int, title: str) -> plt.Figure:
    """The last axis of maps tiled row by row into one gray mosaic, each map on its own scale (as the notebook's
    subplots)."""
    h, w, n = maps.shape
    nrows = -(-n // ncols)
    lo, hi = maps.min(axis=(0, 1)), maps.max(axis=(0, 1))
    scaled = (maps - lo) / np.where(hi > lo, hi - lo, 1)
    mosaic = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, ncols)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = scaled[..., i]
    fig, ax = plt.subplots(figsize=(1.2 * ncols, 1.2 * nrows + 0.4))
    ax.imshow(mosaic, cmap=plt.get_cmap("gray").with_extremes(bad="white"), vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    return fig


def rule_parts(claim: ClaimRecord) -> str:
    """Each test the claim's rule combined, with its decision as the rule takes it (and "cannot refute" or
    "refutes only" where the rule takes it one way); evidence recorded before the rule's levels were gives each
    test's decision alone, labelled so."""
    tests = claim.tests()
    roles = {(True, False): " (cannot refute)", (False, True): " (refutes only)"}

    def role(s: dict) -> str:
        return roles.get((s.get("holds_at") is not None, s.get("refutes_at") is not None), "")

    text = ", ".join(f"{name} {s.get('decision')}{role(s)}" for name, s in tests.items())
    old = any("refutes_at" not in s for s in tests.values())
    return text + (" (each alone, at its own α: this evidence does not record the rule's levels)" if old else "")


def _is_basic(run: RunRecord) -> bool:
    return run.model == "basic_cnn" and run.model_config.get("padding", "valid") == "valid"


TRAJECTORY_CLAIMS = {("basic_cnn", 10): "overfitting-signature", ("improved_cnn", 20): "improved-no-overfit"}
"""The claim that decides on each batch-64 model's validation-loss trajectory, by (model, epochs)."""


def _trajectory(ev: Evidence, model: str, epochs: int) -> tuple[ClaimRecord, dict[str, dict]] | None:
    """The claim deciding on this model's validation-loss curve, and what it measured per run key."""
    claim = ev.claim(TRAJECTORY_CLAIMS.get((model, epochs), ""))
    per_seed = (claim.measured.get("per_seed") or []) if claim else []
    if not per_seed or "earlier_min_epoch" not in per_seed[0]:
        return None  # evidence from before the trajectory was recorded: draw the curves only
    keys = claim.runs[: len(per_seed)]
    return claim, dict(zip(keys, per_seed[: len(keys)], strict=True))


def _mark_rises(
    loss_ax: plt.Axes, ax: plt.Axes, runs: list[RunRecord], measured: dict[str, dict], min_rise: float
) -> None:
    """On the loss panel, each seed's lowest validation loss before the last epoch (dot); on `ax`, each seed's
    validation loss relative to that value, ending at the final rise the rule compares with `min_rise` (log)."""
    threshold = math.expm1(min_rise)
    for r in runs:
        m = measured.get(r.key)
        if m is None:
            continue
        loss_ax.plot(m["earlier_min_epoch"], m["earlier_min_val_loss"], "o", color="k", ms=4)
        relative = np.asarray(r.history["val_loss"], dtype=float) / m["earlier_min_val_loss"] - 1
        (line,) = ax.plot(range(1, len(relative) + 1), 100 * relative, lw=1)
        ax.plot(len(relative), 100 * relative[-1], "o", color=line.get_color(), ms=5)
        if "val_loss_climb" in m and math.isfinite(m["val_loss_climb"]):  # the trend after the lowest epoch
            lowest, start = m["onset_epoch"], relative[m["onset_epoch"] - 1]
            end = (1 + start) * math.exp(m["val_loss_climb"]) - 1
            ax.plot([lowest, len(relative)], [100 * start, 100 * end], "--", color=line.get_color(), lw=1)
        ax.annotate(
            f"{relative[-1]:+.1%}",
            (len(relative), 100 * relative[-1]),
            fontsize=7,
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
        )
    ax.axhline(100 * threshold, color="k", ls="--", lw=1, label=f"how far counts: +{threshold:.1%} (MIN_RISE)")
    if any("val_loss_climb" in m for m in measured.values()):
        ax.plot([], [], "--", color="gray", lw=1, label="trend after the lowest epoch (its climb)")
    ax.axhline(0, color="gray", lw=0.5)
    finals = [math.expm1(m["val_loss_rise"]) for m in measured.values()]
    ax.set_ylim(-25, 100 * max(2.5 * threshold, 1.3 * max(finals, default=0.0)))
    ax.set(xlabel="Epoch #", ylabel="% above lowest earlier val loss", title="Validation loss, per seed")


def training_curves(ev: Evidence, out: Path) -> list[Figure]:
    """Loss and accuracy over epochs for every batch-64 CNN configuration, one figure each (`model_curves`)."""
    groups = sorted(
        ((k, g) for k, g in run_groups(ev.runs).items() if k[2] == 64 and k[0] != "mlp"), key=lambda kg: kg[0]
    )
    return [model_curves(ev, out, runs, i) for i, (_, runs) in enumerate(groups)]


def model_curves(ev: Evidence, out: Path, runs: list[RunRecord], index: int) -> Figure:
    """One configuration's loss and accuracy over epochs (mean and min–max over seeds); for a model the overfitting
    claims decide on, each seed's validation loss relative to its lowest earlier value, ending at the rise they test."""
    model, bs, epochs = runs[0].model, runs[0].batch_size, runs[0].epochs
    decided = _trajectory(ev, model, epochs) if _is_basic(runs[0]) or model != "basic_cnn" else None
    fig, axes = plt.subplots(1, 3 if decided else 2, figsize=(16 if decided else 11, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=False):
        _band(ax, _curves(runs, metric), "Training", TRAIN)
        _band(ax, _curves(runs, f"val_{metric}"), "Validation", VAL)
        ax.set(xlabel="Epoch #", ylabel=metric.capitalize())
    caption = f"{model}: mean over {len(runs)} seeds, band = min–max over seeds."
    if decided:
        claim, measured = decided
        _mark_rises(axes[0], axes[2], runs, measured, claim.measured["min_rise"])
        axes[0].plot([], [], "o", color="k", ms=4, label="lowest val loss before the last epoch")
        caption += _trajectory_caption(claim, measured)
    for ax in axes:
        ax.legend(fontsize=8)
    config_text = "".join(f" {k}={v}" for k, v in runs[0].model_config.items())
    fig.suptitle(f"{model}{config_text}, batch {bs}, {epochs} epochs ({len(runs)} seeds)")
    return _save(fig, out, f"curves-{model}-bs{bs}-ep{epochs}-{index}.png", caption)


def _trajectory_caption(claim: ClaimRecord, measured: dict[str, dict]) -> str:
    """What the right panel shows of the claim deciding on the trajectory: the rises (and climbs) it tests."""
    m = claim.measured
    threshold = math.expm1(m["min_rise"])
    rises = ", ".join(f"{math.expm1(s['val_loss_rise']):+.1%}" for s in measured.values())
    caption = (
        f" Right: each seed's validation loss relative to its lowest value before the last epoch (the dot on "
        f"the left); the final rise ({rises}) is what {claim.id} compares with +{threshold:.1%} "
        f"(val_loss_rise)"
    )
    if "after_min_share" in m:
        climbs = ", ".join(f"{math.expm1(c):+.1%}" for c in m["val_loss_climb"])
        shares = ", ".join(f"{v:.2f}" for v in m["after_min_share"])
        caption += (
            f"; dashed, each seed's Theil-Sen trend after its lowest epoch, the climb it asks to be above 0 "
            f"(val_loss_climb: {climbs}), with the share of training after that epoch ({shares}) against "
            f"{m['min_share']:.2f} (after_min_share)"
        )
    return caption + f". The parts it decides on: {rule_parts(claim)}. Verdict: {display_verdict(claim)}."


def _drawn(*figures: Figure | None) -> list[Figure]:
    """The figures a section could draw, in order (None: not drawable from this evidence)."""
    return [f for f in figures if f is not None]


def _basic_by_batch_size(ev: Evidence) -> dict[int, list[RunRecord]]:
    """The basic CNN's 10-epoch runs by batch size, in increasing batch size."""
    by_bs: dict[int, list[RunRecord]] = defaultdict(list)
    for r in ev.runs:
        if _is_basic(r) and r.epochs == 10:
            by_bs[r.batch_size].append(r)
    return dict(sorted(by_bs.items()))


def batch_size(ev: Evidence, out: Path) -> list[Figure]:
    """Training loss per batch size, final accuracies with 95% CIs, and per-seed instability."""
    by_bs = _basic_by_batch_size(ev)
    return _drawn(batch_loss(by_bs, out), batch_accuracy(by_bs, out), batch_instability(ev, out))


def batch_loss(by_bs: dict[int, list[RunRecord]], out: Path) -> Figure | None:
    """Training loss over epochs per batch size, mean and min–max over seeds."""
    if not by_bs:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for bs, runs in by_bs.items():
        _band(ax, _curves(runs, "loss"), f"batch {bs}")
    ax.set(xlabel="Epoch #", ylabel="Training loss", yscale="log", title="Training loss per batch size")
    ax.legend()
    return _save(fig, out, "batch-loss.png", "Training loss, mean over seeds, band = min–max over seeds.")


def batch_accuracy(by_bs: dict[int, list[RunRecord]], out: Path) -> Figure | None:
    """Final validation and test accuracy per batch size: mean with 95% CI, and each seed."""
    if not by_bs:
        return None
    final = {
        "final validation accuracy": [
            [(r.history.get("val_accuracy") or [np.nan])[-1] for r in rs] for rs in by_bs.values()
        ],
        "test accuracy": [[r.evaluation.get("test", {}).get("accuracy", np.nan) for r in rs] for rs in by_bs.values()],
    }
    fig, ax = plt.subplots(figsize=(7, 4))
    for offset, (label, values) in zip((-0.1, 0.1), final.items(), strict=True):
        x = np.arange(len(by_bs)) + offset
        cis = [mean_ci(v) for v in values]
        ax.errorbar(x, [m for m, _ in cis], yerr=[h for _, h in cis], fmt="o", capsize=4, label=label)
        for xi, v in zip(x, values, strict=True):
            ax.plot([xi] * len(v), v, ".", color="gray", alpha=0.6)
    ax.set_xticks(range(len(by_bs)), [str(bs) for bs in by_bs])
    ax.set(xlabel="Batch size", ylabel="Accuracy", title="Final accuracy per batch size")
    ax.legend()
    return _save(fig, out, "batch-accuracy.png", "Mean with Student-t 95% CI; gray dots are single seeds.")


def batch_instability(ev: Evidence, out: Path) -> Figure | None:
    """Each seed's training-loss instability per batch size against the doubling that batch-small-unstable counts."""
    unstable = ev.claim("batch-small-unstable")
    instability, risen = (
        (unstable.measured.get("instability"), unstable.measured.get("risen_from")) if unstable else (None, None)
    )
    if not instability or risen is None:
        return None
    sizes = sorted(instability, key=int)
    finite = [v for vs in instability.values() for v in vs if np.isfinite(v)] or [0.0]
    top = max(max(finite), risen) * 1.15 + 0.1
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, bs in enumerate(sizes):
        values = np.asarray(instability[bs], dtype=float)
        ax.plot([i] * len(values), np.where(np.isfinite(values), values, top), ".", color="tab:orange", ms=9)
        ax.text(i, top * 1.04, f"{int(np.sum(values >= risen))} of {len(values)} doubled", ha="center", fontsize=8)
    ax.axhline(risen, color="k", ls="--", lw=1, label="loss doubled again (log 2)")
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_xlim(-0.6, len(sizes) - 0.4)
    ax.set_ylim(top=top * 1.12)
    ax.set(xlabel="Batch size", ylabel="log(largest loss / running min)", title="Instability of the training loss")
    ax.legend(fontsize=8, loc="lower left")
    caption = (
        f"Orange: single seeds (a NaN loss at the top); {unstable.id} counts the seeds above the dashed "
        f"line at batch 16 against those at 128 (rises_16_vs_128) and against half the runs "
        f"(rises_16_vs_half, which can only refute): {rule_parts(unstable)}. Verdict: {display_verdict(unstable)}."
    )
    return _save(fig, out, "batch-instability.png", caption)


def _points_with_ci(ax: plt.Axes, groups: dict[str, list[float]], ylabel: str) -> None:
    for i, values in enumerate(groups.values()):
        m, h = mean_ci(values)
        ax.bar(i, m, yerr=h, capsize=6, color=["tab:blue", "tab:gray"][i % 2], alpha=0.6)
        ax.plot([i] * len(values), values, "k.")
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel(ylabel)


def cnn_vs_mlp(ev: Evidence, out: Path) -> list[Figure]:
    """Test accuracy of the CNN and the MLP, per seed and with 95% CIs; the CNN/MLP CPU-time ratio and the GPU's
    speed-up as the per-round ratios cnn-vs-mlp-time and gpu-speedup decide on."""
    return _drawn(cnn_mlp_accuracy(ev, out), cnn_mlp_time(ev, out), gpu_speedup(ev, out))


def cnn_mlp_accuracy(ev: Evidence, out: Path) -> Figure | None:
    """The CNN's and the MLP's test accuracy per seed, with the means' 95% CIs."""
    claim = ev.claim("cnn-vs-mlp-accuracy")
    comparison = claim.statistics.get("test_accuracy") if claim else None
    if not comparison:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    _points_with_ci(ax, {"CNN": comparison["a"]["values"], "MLP": comparison["b"]["values"]}, "Test accuracy")
    lows = [min(comparison[k]["values"]) for k in ("a", "b")]
    ax.set_ylim(min(lows) - 0.01, 1.0)
    ax.set_title("Test accuracy")
    return _save(fig, out, "cnn-vs-mlp-accuracy.png", "Bars: mean with 95% CI; dots: single seeds.")


def cnn_mlp_time(ev: Evidence, out: Path) -> Figure | None:
    """The per-round CNN/MLP CPU-time ratios cnn-vs-mlp-time decides on, against MUCH_SLOWER."""
    slower = ev.claim("cnn-vs-mlp-time")
    measured = slower.measured if slower else {}
    if not measured.get("cpu_ratio") or not isinstance(measured.get("threshold"), (int, float)):
        return None
    device, threshold = measured.get("device") or "this CPU", measured["threshold"]
    return _ratio_figure(
        slower,
        measured["cpu_ratio"],
        (threshold, math.inf),
        f'"much slower" read as more than {threshold:g} times as slow (MUCH_SLOWER, a stated convention: '
        "the notebook puts no number on the CNN/MLP gap)",
        f"Basic CNN vs MLP on {device.get('cpu') if isinstance(device, dict) else device}",
        out,
    )


def gpu_speedup(ev: Evidence, out: Path) -> Figure | None:
    """The per-round CPU/GPU time ratios gpu-speedup decides on, against the band FACTOR_5_OR_SO."""
    speedup = ev.claim("gpu-speedup")
    measured = speedup.measured if speedup else {}
    if not measured.get("cpu_over_gpu_ratio"):
        return None
    return _ratio_figure(
        speedup,
        measured["cpu_over_gpu_ratio"],
        (measured["threshold"], math.inf),
        '"divided by a factor 5 or so": at least the lower edge of the factors one rounding to the 1-2-5 '
        f"series calls 5, [{measured['band'][0]:.2f}, {measured['band'][1]:.2f}] (FACTOR_5_OR_SO)",
        f"Basic CNN on {', '.join(measured['device']['gpus'])} vs its CPU",
        out,
    )


def _ratio_figure(
    claim: ClaimRecord, ratios: list[float], region: tuple[float, float], source: str, title: str, out: Path
) -> Figure:
    """What a timing claim decides on: its per-round ratios on a log axis, the region [low, high] (high may be
    infinite) the rule holds the last look's interval against, shaded, and that look's geometric mean with its
    interval; the caption names the measure, the region and its `source`, the interval's level and the verdict."""
    measure, (low, high) = claim.headline.name, region
    where, rule = (
        (f"the band [{low:.2f}, {high:.2f}]", "inside the band, refuted if wholly outside")
        if math.isfinite(high)
        else (f"above {low:.3g}", f"above {low:.3g}, refuted if wholly below")
    )
    look = claim.looks[-1] if claim.looks else None
    fig, ax = plt.subplots(figsize=(6, 4))
    ticks = {n: str(n) for n in range(1, len(ratios) + 1)}
    ax.plot(list(ticks), ratios, "k.", label="one round")
    interval = _last_look(ax, look, ticks) if look and look.has_interval() else ""
    ax.set_yscale("log")
    shown = [v for v in (low, high, *ratios) if math.isfinite(v)] + ([look.ci_low, look.ci_high] if interval else [])
    bottom, top = min(shown) / 1.3, max(shown) * 1.3
    ax.set_ylim(bottom, top)
    ax.axhspan(
        low, min(high, top), color="tab:green", alpha=0.15, lw=0, label=f"holds if the interval is here ({where})"
    )
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.set(xlabel="Round", ylabel=measure)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(
        fig,
        out,
        f"{claim.id}.png",
        f"Black: each round's {measure} ratio (log scale); {interval}green: {where}, {source}. {claim.id} "
        f"holds if that interval lies {rule}. Verdict: {display_verdict(claim)}.",
    )


def _last_look(ax: plt.Axes, look: Look, ticks: dict[float, str]) -> str:
    """Draw the last look's geometric mean and interval right of the rounds (adding its tick); its caption text."""
    x = len(ticks) + 1.5
    ticks[x] = "last look"
    bounds = [[look.mean - look.ci_low], [look.ci_high - look.mean]]
    ax.errorbar([x], [look.mean], yerr=bounds, fmt="o", color="tab:blue", capsize=6, label="last look")
    return (
        f"blue: the last look's geometric mean {look.mean:.2f} and its {look.ci_method or 'interval'} "
        f"[{look.ci_low:.2f}, {look.ci_high:.2f}] after {look.n} rounds, at α = {look.alpha:.3g}; "
    )


def inside(ev: Evidence, out: Path) -> list[Figure]:
    """First-layer filters, the input image, feature, pooling and second-layer maps, and edge scores."""
    maps = ev.arrays("feature-maps-are-filters") or {}
    edges = ev.arrays("filters-detect-edges") or {}
    filters = edges.get("filters", maps.get("filters"))
    return _drawn(
        filters_16(filters, out),
        filters_all(filters, out),
        filters_init(edges, out),
        input_image(maps, out),
        map_grid(maps, "conv_maps", "feature-maps.png", "Feature maps of the first convolutional layer", out),
        map_grid(
            ev.arrays("pooling-maps") or {},
            "pool_maps",
            "pooling-maps.png",
            "Outputs of the first max-pooling layer",
            out,
        ),
        map_grid(
            ev.arrays("deeper-layer-shape") or {},
            "conv2_maps",
            "conv2-maps.png",
            "Feature maps of the second convolutional layer",
            out,
        ),
        edge_scores(edges, out),
    )


def filters_16(filters: np.ndarray | None, out: Path) -> Figure | None:
    """The notebook's 4×4 view of the first 16 trained first-layer filters."""
    if filters is None:
        return None
    grid = _grid(filters[:, :, 0, :16], 4, "First 16 filters of the first convolutional layer")
    return _save(grid, out, "filters-16.png", "The notebook's 4×4 view of the first 16 trained 3×3 filters.")


def filters_all(filters: np.ndarray | None, out: Path) -> Figure | None:
    """Every trained first-layer filter."""
    if filters is None:
        return None
    grid = _grid(filters[:, :, 0, :], 8, f"All {filters.shape[-1]} trained filters")
    return _save(grid, out, "filters-all.png", "All trained first-layer filters.")


def filters_init(edges: dict[str, np.ndarray], out: Path) -> Figure | None:
    """The first-layer filters at initialization, for comparison."""
    if "filters_init" not in edges:
        return None
    grid = _grid(edges["filters_init"][:, :, 0, :], 8, "The same filters at initialization")
    return _save(grid, out, "filters-init.png", "First-layer filters before training, for comparison.")


def input_image(maps: dict[str, np.ndarray], out: Path) -> Figure | None:
    """The image the feature maps are of."""
    if "image" not in maps:
        return None
    fig, ax = plt.subplots(figsize=(3.5, 3.5))
    fig.colorbar(ax.imshow(maps["image"], cmap="gray"), ax=ax)
    ax.set_title("Input image")
    ax.axis("off")
    return _save(fig, out, "input-image.png", "The image fed to the network (X_mean added back).")


def map_grid(arrays: dict[str, np.ndarray], key: str, name: str, title: str, out: Path) -> Figure | None:
    """One layer's maps of the input image (arrays[key]), eight a row, each on its own gray scale."""
    if key not in arrays:
        return None
    caption = f"{title}, shape {tuple(arrays[key].shape)}; map 0 top left, row by row, each on its own gray scale."
    return _save(_grid(arrays[key], 8, f"{title} ({arrays[key].shape[-1]} maps)"), out, name, caption)


def edge_scores(edges: dict[str, np.ndarray], out: Path) -> Figure | None:
    """The edge-detector score of each filter, trained, at initialization and random, with their medians."""
    labels = (("trained", "score_trained"), ("initial", "score_init"), ("random", "score_random"))
    scores = {label: edges[key] for label, key in labels if key in edges}
    if not scores:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    rng = np.random.default_rng(0)
    for i, s in enumerate(scores.values()):
        ax.plot(s, i + rng.uniform(-0.15, 0.15, len(s)), ".", alpha=0.6)
        ax.plot([np.median(s)] * 2, [i - 0.3, i + 0.3], "k-", lw=2)
    ax.set_yticks(range(len(scores)), [f"{k} filters" for k in scores])
    ax.set(xlabel="Edge-detector score", title="Edge-detector score per filter")
    return _save(fig, out, "edge-scores.png", "One dot per filter; black bar: median.")


def predictions(ev: Evidence, out: Path) -> list[Figure]:
    """Softmax output for the ambiguous example, and a gallery of the least confident test examples."""
    return _drawn(ambiguous_example(ev, out), least_confident(ev, out))


def ambiguous_example(ev: Evidence, out: Path) -> Figure | None:
    """Training example 31727 and the softmax output of each seed's model for it."""
    one = ev.arrays("ambiguous-31727")
    if not one:
        return None
    probs = np.atleast_2d(one["probabilities"])
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [1, 2.5]})
    a0.imshow(one["image"], cmap="gray")
    a0.set_title("Training example 31727")
    a0.axis("off")
    a1.bar(range(10), probs.mean(axis=0), color="tab:blue", alpha=0.6, label=f"mean over {len(probs)} seeds")
    for p in probs:
        a1.plot(range(10), p, "k.", alpha=0.7)
    a1.set_xticks(range(10))
    a1.set(xlabel="Digit", ylabel="Probability", ylim=(0, 1.05))
    a1.legend()
    return _save(fig, out, "ambiguous-31727.png", "Softmax output: bars are the mean, dots single seeds.")


def least_confident(ev: Evidence, out: Path) -> Figure | None:
    """Up to 24 of the least confident test examples, with their labels and two most probable classes."""
    rare = ev.arrays("ambiguities-rare")
    if not rare or not len(rare["images"]):
        return None
    k = min(len(rare["images"]), 24)
    ncols = min(k, 8)
    nrows = -(-k // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.6 * ncols, 1.9 * nrows + 0.3), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            p = rare["probabilities"][i]
            top = np.argsort(p)[::-1][:2]
            ax.imshow(rare["images"][i], cmap="gray")
            best = f"{top[0]}: {p[top[0]]:.2f}  {top[1]}: {p[top[1]]:.2f}"
            ax.set_title(f"#{rare['indices'][i]} label {rare['labels'][i]}\n{best}", fontsize=8)
    fig.suptitle("Least confident test examples")
    caption = "Titles: test index and true label, then the two most probable classes with their probabilities."
    return _save(fig, out, "ambiguities.png", caption)


def specificity(ev: Evidence, out: Path) -> list[Figure]:
    """Selectivity of first- vs second-layer feature maps, as histograms and a box plot."""
    sel = ev.arrays("deeper-features-specific")
    if not sel:
        return []
    data = {"conv1": sel["selectivity_conv1"], "conv2": sel["selectivity_conv2"]}
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    bins = np.histogram_bin_edges(np.concatenate(list(data.values())), bins=20)
    for label, v in data.items():
        a0.hist(v, bins=bins, alpha=0.5, density=True, label=f"{label} ({len(v)} maps)")
    a0.set(xlabel="Selectivity", ylabel="Density")
    a0.legend()
    a1.boxplot(list(data.values()), tick_labels=list(data))
    a1.set_ylabel("Selectivity")
    fig.suptitle("Class selectivity of feature maps")
    return [_save(fig, out, "selectivity.png", "Higher selectivity = more class-specific feature map.")]
