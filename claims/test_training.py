"""The notebook's claims about training: overfitting, CNN vs MLP, batch size, the improved CNN.

Every run comes from the training-run store at the notebook's settings (60k/10k MNIST,
validation_split 0.1, the notebook's optimizers), one per seed, as the notebook's recipes
(fixtures.recipes) declare them. Each claim's rule is a pure
function next to it (measured values -> verdict), deciding on the claim's continuous per-seed
measure with a one-sided test over seeds; `claim.decide` applies it at each planned look.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fixtures import backend, models, stats, timing
from fixtures.claim import Ruling, Verdict, rule
from fixtures.recipes import BATCH_SIZES, NOTEBOOK_STEPS, basic, basic_128, batch_sweep, improved, mlp

Q_RESULTS = "Q: What do you think of 1) the final accuracy and 2) the training time, compared to the MLP of last time?"
Q_OVERFIT = "Q: When does your network start to overfit? How to recognize it?"
Q_BATCH = "Q: Try different values for the batch size (16, 32, 64, 128..). What is its influence?"
Q_IMPROVE = "Q: Improve the CNN to avoid overfitting. The test accuracy should be around 99%."
MIN_RISE = 0.05  # "the training loss increases again": it climbs back >= 5% above its best value so far
RISE_CAP = 1.0  # a rise is counted up to a doubling of the loss; a diverged run counts as the cap
AROUND_99 = (0.985, 0.995)  # "around 99%": the accuracies that round to 99%


def accuracy_on_test_set(run) -> float:
    return run.evaluation["test"]["accuracy"]


def train_minus_val_accuracy(run) -> float:
    """Accuracy on the training split minus on the validation split, both evaluated after the last
    epoch at the same weights without dropout (Keras's running training accuracy is neither)."""
    return run.evaluation["train"]["accuracy"] - run.evaluation["val"]["accuracy"]


def fmt(summary: stats.Summary, digits: int = 4) -> str:
    """`mean [ci_low, ci_high] (n=N)`."""
    return f"{summary.mean:.{digits}f} [{summary.ci_low:.{digits}f}, {summary.ci_high:.{digits}f}] (n={summary.n})"


def overfitting_onset(history: dict) -> dict:
    """Where one run starts to overfit: the epoch of lowest validation loss (1-based) and more."""
    val_loss, loss = np.array(history["val_loss"]), np.array(history["loss"])
    acc, val_acc = np.array(history["accuracy"]), np.array(history["val_accuracy"])
    best = int(np.argmin(val_loss))
    ahead = acc > val_acc  # training accuracy above validation accuracy
    stays_ahead = [e for e in range(len(ahead)) if ahead[e:].all()]
    return {
        "onset_epoch": best + 1,
        "train_acc_above_val_from_epoch": stays_ahead[0] + 1 if stays_ahead else None,
        "final_accuracy": float(acc[-1]),
        "final_val_accuracy": float(val_acc[-1]),
        "val_loss_min_before_last": best < len(val_loss) - 1,
        "train_loss_falls_after_onset": bool(loss[-1] < loss[best]),
    }


@rule
def overfitting_rule(gaps: Sequence[float], alpha: float = stats.ALPHA) -> Ruling:
    """Final training minus validation accuracy (both evaluated without dropout) over seeds: holds if
    its mean is above 0 by a one-sided t-test at alpha, refuted if below 0, else inconclusive."""
    test = stats.one_sided(gaps, 0.0, alpha=alpha)
    return Ruling.of_tests([test], "train_minus_val_accuracy", f"train - val accuracy {test.describe()}")


@pytest.mark.claim("overfitting-signature", question=Q_OVERFIT, runs=(basic,))
def test_basic_cnn_overfits(claim, runs):
    """ "A network overfits when the training accuracy becomes better than the validation accuracy
    (learning by heart, not generalizing), which is the case here."

    Measure per seed (basic CNN, 10 epochs, batch 64): accuracy on the training split minus on the
    validation split after the last epoch. Rule (overfitting_rule): one-sided t over seeds, the
    mean gap above 0 holds, below 0 refutes. The onset (the notebook's "when") is reported as the
    epoch of lowest validation loss, with the epoch from which Keras's curves stay apart.
    """

    def measure(seeds: list[int]) -> dict:
        trained = runs.get_all(basic(runs, seeds))
        return {"runs": trained, "gaps": [train_minus_val_accuracy(r) for r in trained]}

    seeds, m, ruling = claim.decide(measure, lambda m, alpha: overfitting_rule(m["gaps"], alpha))
    per_seed = [overfitting_onset(run.history) for run in m["runs"]]
    onsets = [p["onset_epoch"] for p in per_seed]
    claim.check(
        ruling,
        summary=f"{ruling.headline['text']}; val loss lowest at epoch {onsets} of {len(m['runs'][0].history['loss'])}, "
        f"so overfitting starts after epoch {int(np.median(onsets))} (median)",
        measured={
            "per_seed": per_seed,
            "train_minus_val_accuracy": m["gaps"],
            "onset_epoch": onsets,
            "answer_onset_epoch": float(np.median(onsets)),
        },
        statistics={
            "train_minus_val_accuracy": stats.one_sided(m["gaps"], alpha=ruling.alpha),
            "onset_epoch": stats.summarize(onsets),
        },
        runs=m["runs"],
        seeds=seeds,
    )


@rule
def cnn_beats_mlp_rule(cnn: Sequence[float], fc: Sequence[float], alpha: float = stats.ALPHA) -> Ruling:
    """Test accuracy of the basic CNN minus the MLP's, paired by seed: holds if the mean difference is
    above 0 by a one-sided paired t-test at alpha, refuted if below 0, else inconclusive."""
    test = stats.compare(cnn, fc, alpha=alpha).test
    return Ruling.of_tests([test], "cnn_minus_mlp_test_accuracy", f"CNN - MLP test accuracy {test.describe()}")


@pytest.mark.claim("cnn-vs-mlp-accuracy", question=Q_RESULTS, runs=(basic, mlp))
def test_cnn_more_accurate_than_mlp(claim, runs):
    """ "A CNN, even as shallow as this one, is more accurate ... than fully-connected networks."

    Test accuracy of the basic CNN vs the MLP baseline, paired by seed (cnn_beats_mlp_rule);
    P(CNN > MLP) with its exact interval is reported beside it.
    """

    def measure(seeds: list[int]) -> dict:
        cnn, fc = runs.get_all(basic(runs, seeds)), runs.get_all(mlp(runs, seeds))
        return {
            "runs": cnn + fc,
            "cnn": [accuracy_on_test_set(r) for r in cnn],
            "mlp": [accuracy_on_test_set(r) for r in fc],
        }

    seeds, m, ruling = claim.decide(measure, lambda m, alpha: cnn_beats_mlp_rule(m["cnn"], m["mlp"], alpha))
    comparison = stats.compare(m["cnn"], m["mlp"], alpha=ruling.alpha)
    claim.check(
        ruling,
        summary=f"test accuracy CNN {fmt(comparison.a)} vs MLP {fmt(comparison.b)}; {ruling.headline['text']}; "
        f"P(CNN > MLP) = {comparison.p_a_better:.2f} {[round(x, 2) for x in comparison.p_a_better_ci]}",
        statistics={"test_accuracy": comparison},
        runs=m["runs"],
        seeds=seeds,
    )


MUCH_SLOWER = 2.0
""""Much slower" read as more than twice as slow: a stated convention, since the notebook puts no
number on the CNN/MLP gap (its one factor, "divided by a factor 5 or so", is what a GPU saves)."""


def cnn_vs_mlp_time_rule(cpu_ratios: Sequence[float], alpha: float, gpus: Sequence[str]) -> tuple[Verdict, timing.Look]:
    """CPU only: the (1 - alpha) t-CI of the geometric-mean CNN/MLP CPU-time ratio above MUCH_SLOWER
    holds, below refutes, else inconclusive; inconclusive wherever a GPU is present."""
    look = timing.ratio_look(cpu_ratios, MUCH_SLOWER, alpha)
    return (Verdict.INCONCLUSIVE if gpus else Verdict(look.verdict)), look


@pytest.mark.claim("cnn-vs-mlp-time", question=Q_RESULTS, runs=(basic, mlp))
def test_cnn_much_slower_than_mlp_on_cpu(claim, runs, seeds):
    """ "A CNN, even as shallow as this one, is ... much slower (on CPU) than fully-connected networks."

    Cost of one training step (batch 64) of the basic CNN over the MLP's, timed in this session.
    Each round times both models' fit() over 100 and 200 batches and keeps the difference, so
    fit()'s fixed per-call cost drops out, in the process's CPU time (decisive: xdist neighbours
    on the same cores barely change it) and in wall time (recorded: neighbours stretch it). "Much
    slower" is read as more than 2x (a convention: the notebook gives no number for it). Rule,
    sequential: after 5, 10 and 20 rounds (no new look after 120 s of CPU time), the
    1 - 0.05/3 t-CI (Bonferroni over the 3 looks) of the geometric-mean CPU ratio: holds if above
    2, refuted if below, else the next look; inconclusive after the last. A round whose ratio is not
    positive (a 200-batch fit that cost less than its 100-batch one) failed to measure: it is
    recorded and redrawn. On a GPU inconclusive: the claim is about CPUs.
    """
    sample = timing.step_cost_sampler(runs.data.X_train, runs.data.T_train, ("basic_cnn", "mlp"))
    rounds: list[dict[str, timing.StepCost]] = []

    def cpu_ratio(r: dict[str, timing.StepCost]) -> float:
        return r["basic_cnn"].cpu_s / r["mlp"].cpu_s

    def next_ratio() -> float:
        rounds.append(sample())
        return cpu_ratio(rounds[-1])

    ratios, looks, failed = timing.sequential_ratio_test(next_ratio, MUCH_SLOWER)
    rounds = [r for r in rounds if timing.is_measurement(cpu_ratio(r))]
    device = backend.device_description()
    verdict, last = cnn_vs_mlp_time_rule(ratios, looks[-1].alpha, device["gpus"])
    wall_ratios = [r["basic_cnn"].wall_s / r["mlp"].wall_s for r in rounds]
    wall = timing.ratio_look(wall_ratios, MUCH_SLOWER, last.alpha)
    per_epoch = {
        measure: {name: [getattr(r[name], measure) * NOTEBOOK_STEPS for r in rounds] for name in ("basic_cnn", "mlp")}
        for measure in ("cpu_s", "wall_s")
    }
    cnn, fc = runs.get_all(basic(runs, seeds)), runs.get_all(mlp(runs, seeds))
    wall_text = (
        f"wall-time ratio {wall.mean:.2f} [{wall.ci_low:.2f}, {wall.ci_high:.2f}]"
        if np.isfinite(wall.mean)
        else f"wall-time ratios {min(wall_ratios):.2f} to {max(wall_ratios):.2f}, unusable under this load"
    )
    ratio_text = f"CPU-time ratio {last.mean:.2f} [{last.ci_low:.2f}, {last.ci_high:.2f}] after {last.n} rounds" + (
        f" ({len(failed)} failed round(s) set aside and redrawn: ratio {failed})" if failed else ""
    )
    headline = {
        "name": "CNN/MLP CPU time per training step",
        "values": ratios,
        "higher_is_better": None,
        "text": ratio_text,
    }
    rule_text = (
        f"CPU only; per round, CPU seconds per training step (fit over 200 minus 100 batches) CNN/MLP; looks "
        f"after {list(timing.LOOKS)} rounds ({timing.TIME_CAP_S:g} CPU-s cap): the {1 - last.alpha:.4f} t-CI "
        f"(Bonferroni over the looks) of the geometric-mean ratio above {MUCH_SLOWER:g} holds, below refutes; "
        f"else next look; a non-positive round ratio is a failed measurement, redrawn"
    )
    claim.check(
        Ruling(verdict, headline, last.statistic, last.p, last.alpha, rule=rule_text),
        summary=f"{ratio_text} (CNN {np.median(per_epoch['cpu_s']['basic_cnn']):.2f} vs MLP "
        f"{np.median(per_epoch['cpu_s']['mlp']):.2f} CPU s/epoch); {wall_text} (not decisive); on "
        f"{device['cpu']}; the training runs' median epochs (wall, incl. validation): CNN "
        f"{np.mean([r.s_per_epoch for r in cnn]):.2f} s vs MLP {np.mean([r.s_per_epoch for r in fc]):.2f} s"
        + (" (GPU present: the claim is about CPUs)" if device["gpus"] else ""),
        measured={
            "s_per_epoch": per_epoch["cpu_s"],
            "wall_s_per_epoch": per_epoch["wall_s"],
            "cpu_ratio": ratios,
            "failed_cpu_ratio": failed,
            "wall_ratio": wall_ratios,
            "run_s_per_epoch": {"basic_cnn": [r.s_per_epoch for r in cnn], "mlp": [r.s_per_epoch for r in fc]},
            "threshold": MUCH_SLOWER,
            "device": device,
        },
        statistics={
            "cpu_ratio": {**last.to_dict(), "values": ratios},
            "wall_ratio": {**wall.to_dict(), "values": wall_ratios},
        },
        looks=looks,
        runs=cnn + fc,
        seeds=seeds,
    )


@rule
def small_batch_unstable_rule(rise16: Sequence[float], rise128: Sequence[float], alpha: float = stats.ALPHA) -> Ruling:
    """Instability = the training loss's largest relative rise above its running minimum (negative if it
    never rises; capped at 1, a diverged run counts 1). Holds if batch 16's instability exceeds batch
    128's (one-sided paired t over seeds at alpha) and exceeds 0.05, the smallest rise that counts as
    "increases again" (one-sided t at alpha); refuted if either test finds the opposite at alpha/2
    (16 not less stable than 128, or 16's loss not rising by 0.05); else inconclusive."""
    paired = stats.compare(rise16, rise128, alpha=alpha).test
    rises = stats.one_sided(rise16, MIN_RISE, alpha=alpha)
    return Ruling.of_tests(
        [paired, rises],
        "instability_16_minus_128",
        f"instability 16 - 128 {paired.describe(3)}; instability 16 {rises.describe(3)}",
    )


@pytest.mark.claim("batch-small-unstable", question=Q_BATCH, runs=(batch_sweep,))
def test_small_batches_are_unstable(claim, runs):
    """ "When the batch size is too small, learning is unstable: the training loss increases again
    after a while."

    Measure per run: instability (stats.rise_above_running_min of the per-epoch training loss,
    capped at RISE_CAP) for batch 16 and 128, paired by seed (small_batch_unstable_rule, with
    MIN_RISE = 0.05 as the smallest rise that counts). The trend over 16/32/64/128 is reported as
    Spearman's rho over all (batch size, seed) points.
    """

    def measure(seeds: list[int]) -> dict:
        trained = runs.get_all(batch_sweep(runs, seeds))
        by_size = {b: [r for r in trained if r.spec.batch_size == b] for b in BATCH_SIZES}
        return {
            "runs": [r for rs in by_size.values() for r in rs],
            "instability": {
                b: [stats.rise_above_running_min(r.history["loss"], RISE_CAP) for r in rs] for b, rs in by_size.items()
            },
        }

    seeds, m, ruling = claim.decide(
        measure, lambda m, alpha: small_batch_unstable_rule(m["instability"][16], m["instability"][128], alpha)
    )
    instability = m["instability"]
    rho, rho_p = scipy_stats.spearmanr(
        [b for b in BATCH_SIZES for _ in seeds], [v for b in BATCH_SIZES for v in instability[b]]
    )
    rises = {b: sum(v >= MIN_RISE for v in vs) for b, vs in instability.items()}
    claim.check(
        ruling,
        summary=f"{ruling.headline['text']}; instability by batch size (mean): "
        + ", ".join(f"{b}: {np.mean(v):.3f}" for b, v in instability.items())
        + f"; loss rose again by >= {MIN_RISE:.0%} in {rises} seeds; Spearman rho(batch size, instability) = "
        f"{rho:.2f} (p = {rho_p:.3g})",
        measured={
            "instability": {str(b): v for b, v in instability.items()},
            "seeds_with_rise": rises,
            "min_rise": MIN_RISE,
            "cap": RISE_CAP,
            "spearman_rho": rho,
            "spearman_p": rho_p,
        },
        statistics={
            "instability_16_vs_128": stats.compare(instability[16], instability[128], alpha=ruling.alpha),
            "instability_16_vs_min_rise": stats.one_sided(instability[16], MIN_RISE, alpha=ruling.alpha),
            **{f"instability_{b}": stats.summarize(v) for b, v in instability.items()},
        },
        runs=m["runs"],
        seeds=seeds,
    )


@rule
def batch_128_rule(
    test128: Sequence[float],
    test64: Sequence[float],
    val128: Sequence[float],
    val64: Sequence[float],
    alpha: float = stats.ALPHA,
) -> Ruling:
    """Test and final validation accuracy of batch 128 minus batch 64, paired by seed: holds if both
    mean differences are above 0 (one-sided paired t-tests at alpha), refuted if either is below 0 at
    alpha/2, else inconclusive (a slight difference needs more seeds to show)."""
    test = stats.compare(test128, test64, alpha=alpha).test
    val = stats.compare(val128, val64, alpha=alpha).test
    return Ruling.of_tests(
        [test, val],
        "test_accuracy_128_minus_64",
        f"128 - 64 test accuracy {test.describe()}; val accuracy {val.describe()}",
    )


@pytest.mark.claim("batch-128-beats-64", question=Q_BATCH, runs=(basic_128, basic))
def test_batch_128_slightly_better_than_64(claim, runs):
    """ "128 is actually slightly better than 64."

    Final validation accuracy and test accuracy of batch 128 vs batch 64, paired by seed
    (batch_128_rule); P(128 > 64) with its exact interval is reported beside them.
    """

    def measure(seeds: list[int]) -> dict:
        large, small = runs.get_all(basic_128(runs, seeds)), runs.get_all(basic(runs, seeds))
        return {
            "runs": large + small,
            "test128": [accuracy_on_test_set(r) for r in large],
            "test64": [accuracy_on_test_set(r) for r in small],
            "val128": [r.history["val_accuracy"][-1] for r in large],
            "val64": [r.history["val_accuracy"][-1] for r in small],
        }

    seeds, m, ruling = claim.decide(
        measure, lambda m, alpha: batch_128_rule(m["test128"], m["test64"], m["val128"], m["val64"], alpha)
    )
    test = stats.compare(m["test128"], m["test64"], alpha=ruling.alpha)
    val = stats.compare(m["val128"], m["val64"], alpha=ruling.alpha)
    claim.check(
        ruling,
        summary=f"test accuracy 128: {fmt(test.a)} vs 64: {fmt(test.b)}; {ruling.headline['text']}; "
        f"P(128 > 64) test {test.p_a_better:.2f}, val {val.p_a_better:.2f}",
        statistics={"test_accuracy": test, "val_accuracy": val},
        runs=m["runs"],
        seeds=seeds,
    )


@rule
def around_99_rule(accuracies: Sequence[float], n_test: int, alpha: float = stats.ALPHA) -> Ruling:
    """Test accuracy over seeds, its standard error widened in quadrature by the binomial error of one
    n_test-example accuracy; "around 99%" is the band [0.985, 0.995] of accuracies that round to 99%.
    Holds if the mean is inside the band by both one-sided t-tests at alpha (its 1 - 2 alpha interval
    lies inside), refuted if it is below 0.985 or above 0.995 at alpha/2, else inconclusive."""
    se = stats.binomial_se(float(np.clip(np.mean(accuracies), 0, 1)), n_test)
    low, high = AROUND_99
    above = stats.one_sided(accuracies, low, alpha=alpha, extra_se=se)
    below = stats.one_sided(accuracies, high, higher_is_better=False, alpha=alpha, extra_se=se)
    ruling = Ruling.of_tests(
        [above, below],
        "test_accuracy",
        f"test accuracy {above.mean:.4f} [{above.ci_low:.4f}, {above.ci_high:.4f}] "
        f"vs band [{low}, {high}] (n={above.n}, binomial SE {se:.4f})",
    )
    return dataclasses.replace(ruling, headline={**ruling.headline, "higher_is_better": None})


@pytest.mark.claim("improved-99", question=Q_IMPROVE, runs=(improved,))
def test_improved_cnn_reaches_99_percent(claim, runs):
    """ "The test accuracy should be around 99%." (the notebook's own run: 0.9929)

    Test accuracy of the improved CNN (20 epochs, batch 64) over seeds against the band
    [0.985, 0.995] of accuracies that round to 99% (around_99_rule). The uncertainty combines the
    seeds' spread with the binomial error of one 10k-example accuracy (about 0.1 points at 99%),
    which all seeds share because they share the test set.
    """

    def measure(seeds: list[int]) -> dict:
        trained = runs.get_all(improved(runs, seeds))
        return {"runs": trained, "accuracy": [accuracy_on_test_set(r) for r in trained]}

    n_test = len(runs.data.t_test)
    seeds, m, ruling = claim.decide(measure, lambda m, alpha: around_99_rule(m["accuracy"], n_test, alpha))
    claim.check(
        ruling,
        summary=f"{ruling.headline['text']}; per seed {[round(v, 4) for v in m['accuracy']]}",
        measured={"band": AROUND_99, "n_test": n_test, "notebook_run": 0.9929},
        statistics={"test_accuracy": stats.summarize(m["accuracy"])},
        runs=m["runs"],
        seeds=seeds,
    )


@rule
def no_overfit_rule(gaps: Sequence[float], alpha: float = stats.ALPHA) -> Ruling:
    """The notebook's definition, "overfits when the training accuracy becomes better than the validation
    accuracy", on final training minus validation accuracy evaluated without dropout: holds (does not
    overfit) if the mean gap is below 0 by a one-sided t-test over seeds at alpha, refuted if above 0,
    else inconclusive."""
    test = stats.one_sided(gaps, 0.0, higher_is_better=False, alpha=alpha)
    return Ruling.of_tests([test], "train_minus_val_accuracy", f"train - val accuracy {test.describe()}")


@pytest.mark.xfail(
    not models.replaced("improved_cnn"),
    strict=True,
    reason="refuted on TF 2.21 / Keras 3.15 CPU at seeds 0-2: training minus validation "
    "accuracy without dropout 0.0029 [0.0020, 0.0039] (90% t-CI), p = 0.0062; the "
    "improved CNN still overfits slightly, by about a quarter of the basic CNN's 0.0110",
)
@pytest.mark.claim("improved-no-overfit", question=Q_IMPROVE, runs=(improved, basic))
def test_improved_cnn_does_not_overfit(claim, runs):
    """ "Once you find a good architecture that does not overfit, train it for 20 epochs."

    "Does not overfit" by the notebook's own definition ("A network overfits when the training
    accuracy becomes better than the validation accuracy"), measured honestly: both accuracies
    evaluated after the last epoch at the same weights without dropout (Keras's reported training
    accuracy runs with three Dropout(0.5) layers active, which depresses it by design, so it is
    recorded but not used). Rule: no_overfit_rule. Reported as context, not decided on: the gap
    relative to the basic CNN's, the epoch of lowest validation loss, and the test loss of both.
    """

    def measure(seeds: list[int]) -> dict:
        trained = runs.get_all(improved(runs, seeds))
        return {"runs": trained, "gaps": [train_minus_val_accuracy(r) for r in trained]}

    seeds, m, ruling = claim.decide(measure, lambda m, alpha: no_overfit_rule(m["gaps"], alpha))
    base = runs.get_all(basic(runs, seeds))
    base_gap = stats.summarize([train_minus_val_accuracy(r) for r in base])
    onsets = [overfitting_onset(r.history)["onset_epoch"] for r in m["runs"]]
    loss = stats.compare(
        [r.evaluation["test"]["loss"] for r in m["runs"]],
        [r.evaluation["test"]["loss"] for r in base],
        higher_is_better=False,
        alpha=ruling.alpha,
    )
    claim.check(
        ruling,
        summary=f"{ruling.headline['text']} (basic CNN: {fmt(base_gap)}); val loss lowest at epoch {onsets} of "
        f"{len(m['runs'][0].history['loss'])}; test loss improved {fmt(loss.a)} vs basic {fmt(loss.b)}",
        measured={
            "train_minus_val_accuracy": m["gaps"],
            "val_loss_lowest_epoch": onsets,
            "keras_train_accuracy_dropout": [r.history["accuracy"][-1] for r in m["runs"]],
            "val_accuracy": [r.evaluation["val"]["accuracy"] for r in m["runs"]],
        },
        statistics={
            "train_minus_val_accuracy": stats.one_sided(m["gaps"], higher_is_better=False, alpha=ruling.alpha),
            "basic_train_minus_val_accuracy": base_gap,
            "test_loss": loss,
        },
        runs=m["runs"] + base,
        seeds=seeds,
    )
