"""The notebook's "Analysing the CNN" part: trained weights, feature maps, pooling, deeper layers,
the ambiguous example 31727 and how often such ambiguities happen.

Every claim looks at the notebook's improved CNN (two conv blocks, 20 epochs, batch 64) trained
once per seed by the run store, or at a student's model that replaced it (`--model
improved_cnn=SOURCE`); nothing here trains. Layers are found by type, following the layer graph
(models.find_layers: the first Conv2D, the MaxPooling2D that pools its maps, the next Conv2D;
models.activated: a Conv2D followed by its own Activation('relu') layer, as in the notebook's basic
CNN, gives ReLU maps at that layer's output), so a student's layout works where the question
applies, and a claim whose question needs what the model lacks skips, naming it.
The four probe images (31727 and four random training examples) go through one sub-model per
seed, shared by the feature-map claims.
Each claim's rule is a pure function next to it; the exact identities (shapes, the conv and
pooling arithmetic) hold or are refuted, the statistical claims decide on their per-seed measure
with a one-sided test over seeds through `claim.decide`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pytest
from scipy import stats as sps

from fixtures import analysis, backend, models, recipes, stats
from fixtures.claim import Description, Ruling, rule

EXAMPLE = 31727  # the notebook's `idx`: "This example could be a 1 or 7."
N_RANDOM_PROBES = 4  # further training examples whose feature maps are checked too
PROBE_SEED = 0  # rng seed that picks them
RANDOM_FILTERS_PER_FILTER = 16  # 32 trained filters -> 512 random ones of matched scale per seed
RUNNER_UP = 0.1
"""A digit the model "could" see: probability at least 0.1, the chance level of a guess among 10 digits. A convention
(the notebook's "could be a 1 or 7" has no number); used for 31727's runner-up and for the ambiguous examples."""
OFTEN = 0.05
""""Often": at least 1 example in 20. A convention (the notebook's question has no number): five times the 1% of
errors its "around 99%" leaves, so ambiguities that rare cannot be most of the test set's hard cases."""
LEAST_CONFIDENT_KEPT = 25
ACTIVATION_BATCH = 500

QUESTION_FEATURE_MAPS = (
    "Q: Visualize the 16 feature maps using subplot(). "
    "Relate these activation with the filters you have visualized previously."
)
QUESTION_DEEPER = (
    "Bonus question: if you had several convolutional layers in your network, visualize them "
    "too. What do you think of the specificity of some features?"
)


@dataclass
class Probe:
    """One seed's improved CNN and what it computes on the probe images (None: the model has no such layer)."""

    run: Any
    layout: models.ConvLayout
    conv1: np.ndarray | None  # (n_probes, 26, 26, 32) first Conv2D's activated maps, layers[0] in the notebook
    pool1: np.ndarray | None  # (n_probes, 13, 13, 32) the MaxPooling2D of those maps, layers[1]
    conv2: np.ndarray | None  # (n_probes, 11, 11, 64) next Conv2D's activated maps, layers[3]
    probabilities: np.ndarray  # (n_probes, 10) softmax output


def skip_unless(reason: str | None) -> None:
    """Skip the claim when the student's model lacks what its question needs, naming it and the model."""
    if reason:
        pytest.skip(f"not applicable to {models.replaced('improved_cnn') or 'the improved CNN'}: {reason}")


def relu_missing(model: Any, index: int) -> str | None:
    """Why the activated maps of the Conv2D `index` (its own activation, or an Activation layer right after it)
    are not the ReLU(cross-correlation + bias) the analysis claims compute, or None."""
    where, activation = models.activated(model, index)
    if activation != "relu":
        layer = model.layers[where]
        return f"its {layer.name} ({type(layer).__name__}) has activation {activation!r}, not 'relu'"
    return None


def improved_runs(runs: Any, seeds: Sequence[int]) -> list[Any]:
    """The notebook's improved CNN, one run per seed."""
    return runs.get_all(recipes.improved(runs, seeds))


@pytest.fixture(scope="module")
def improved(runs: Any, seeds: list[int]) -> list[Any]:
    """The improved CNN runs of the session's seeds (the first look's under --seeds auto)."""
    return improved_runs(runs, seeds)


@pytest.fixture(scope="module")
def probe_indices(mnist: Any) -> list[int]:
    """31727 and four other training examples drawn with a fixed rng."""
    rng = np.random.default_rng(PROBE_SEED)
    others = rng.choice(np.delete(np.arange(len(mnist.t_train)), EXAMPLE), N_RANDOM_PROBES, replace=False)
    return [EXAMPLE, *(int(i) for i in others)]


@pytest.fixture(scope="module")
def probe(mnist: Any, probe_indices: list[int]) -> Callable[[Any], Probe]:
    """One sub-model per run returning the first conv's activated maps, their pooling, the next conv's activated
    maps (layers 0, 1, 3 in the notebook) and the softmax for the probe images, in one pass, computed once per run
    for every claim."""
    x = mnist.X_train[probe_indices]
    done: dict[str, Probe] = {}

    def compute(run: Any) -> Probe:
        if run.spec.key not in done:
            model = run.model
            layout = models.find_layers(model)
            wanted = [
                None if layout.conv1 is None else models.activated(model, layout.conv1)[0],
                layout.pool1,
                None if layout.conv2 is None else models.activated(model, layout.conv2)[0],
            ]
            found = sorted({i for i in wanted if i is not None})
            sub = keras.Model(model.inputs, [model.layers[i].output for i in found] + list(model.outputs))
            outputs = sub.predict(x, verbose=0)
            *maps, probabilities = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            by_index = dict(zip(found, maps, strict=True))
            done[run.spec.key] = Probe(run, layout, *(by_index.get(i) for i in wanted), probabilities)
        return done[run.spec.key]

    return compute


@pytest.fixture(scope="module")
def probes(improved: list[Any], probe: Callable[[Any], Probe]) -> list[Probe]:
    """The probes of the session's seeds."""
    return [probe(run) for run in improved]


# --- Accessing trained weights -------------------------------------------------------------


@rule
def weight_shapes_rule(rows: Sequence[dict]) -> Ruling:
    """Exact identity (never inconclusive): every checked layers[0] kernel has its model's expected shape,
    (3,3,1,32) for the improved CNN and (3,3,1,16) for the basic one, equal to the layer's
    kernel_size + (input channels, filters), with a (filters,) bias."""

    def ok(r: dict) -> bool:
        related = (*r["kernel_size"], r["input_channels"], r["filters"])
        return tuple(r["kernel"]) == tuple(r["expected_kernel"]) == related and tuple(r["bias"]) == (r["filters"],)

    bad = [r for r in rows if not ok(r)]
    shapes = sorted({(r["model"], tuple(r["kernel"])) for r in rows})
    return Ruling.fact(
        bool(rows) and not bad,
        "layers_not_matching",
        len(bad),
        "; ".join(f"{n} CNN W {k} = {k[0]}x{k[1]} kernel x {k[2]} input channel x {k[3]} filters" for n, k in shapes)
        + f" ({len(rows)} layers checked, {len(bad)} not matching)",
    )


def kernel_row(name: str, run: Any, notebook: tuple[int, ...]) -> dict[str, Any]:
    """One model's first Conv2D: its kernel and bias shapes, the shape expected of it (the notebook's, or a student's
    own configuration) and that configuration; skips the claim where the model has no such layer or no bias."""
    layout = models.find_layers(run.model)
    skip_unless(layout.missing("conv1"))
    layer = run.model.layers[layout.conv1]
    skip_unless(None if layer.use_bias else "its first Conv2D has no bias (use_bias=False)")
    kernel, bias = layer.get_weights()
    input_channels = layer.input.shape[-1]
    own = (*layer.kernel_size, input_channels, layer.filters)
    return {
        "model": name,
        "seed": run.spec.seed,
        "kernel": kernel.shape,
        "bias": bias.shape,
        "expected_kernel": own if run.spec.model_source else notebook,
        "kernel_size": tuple(layer.kernel_size),
        "input_channels": input_channels,
        "filters": layer.filters,
    }


@pytest.mark.claim(
    "weight-shapes",
    runs=(recipes.improved, recipes.first_basic),
    question="Q: Print the shape of these weights and relate them to the network.",
)
def test_weight_shapes(claim, runs, seeds, improved):
    """ "W = model.layers[0].get_weights()[0] ... Print the shape of these weights and relate them
    to the network." (the notebook prints `W shape :  (3, 3, 1, 32)`)

    The first conv layer's kernel is (kernel height, kernel width, input channels, filters):
    (3, 3, 1, 32) with a (32,) bias for the improved CNN of every seed, (3, 3, 1, 16) with a (16,)
    bias for the basic CNN (seed 0's run; shapes do not depend on the seed). Rule: weight_shapes_rule.
    A student's model (--model) is checked on its first Conv2D against its own configuration
    (kernel_size + (input channels, filters)), since the notebook's (3, 3, 1, 32) is about its own
    model; one without a Conv2D skips.
    """
    (basic,) = runs.get_all(recipes.first_basic(runs, seeds))
    rows = [kernel_row("improved", r, (3, 3, 1, 32)) for r in improved] + [kernel_row("basic", basic, (3, 3, 1, 16))]
    ruling = weight_shapes_rule(rows)
    claim.uses([*improved, basic])
    summary = ruling.headline["text"] + f" ({len(improved)} improved seed(s), basic seed {seeds[0]})"
    claim.check(ruling, summary=summary, measured={"layers": rows})


# --- Visualizing the feature maps ----------------------------------------------------------


@rule
def feature_maps_rule(shapes_ok: Sequence[bool], error_over_bound: Sequence[float]) -> Ruling:
    """Exact identity up to rounding (never inconclusive: the bound is an a-priori worst case, not a noise
    estimate): holds if every seed's layers[0] maps have the expected shape and every element equals
    ReLU(valid cross-correlation + bias) within the float32 dot-product rounding bound
    gamma_10 * (|x|*|W| + |b|) (Higham eq. 3.5; TF32-widened on GPU), i.e. the worst error/bound <= 1.
    Refuted by any wrong shape or error beyond the bound; a seed whose error is NaN measured nothing: no
    evidence, so the claim is inconclusive unless another seed refutes it."""
    ratios = np.asarray(error_over_bound, dtype=float)
    unmeasured = bool(np.isnan(ratios).any())
    worst = float(np.max(ratios)) if ratios.size else math.nan  # np.max keeps a NaN, Python's max may skip it
    holds = bool(shapes_ok) and all(shapes_ok) and not bool((ratios > 1.0).any())
    return Ruling.fact(
        holds,
        "worst_error_over_bound",
        worst,
        f"worst error at {worst:.2f} of the rounding bound over {len(shapes_ok)} seed(s)"
        + (f" ({int(np.isnan(ratios).sum())} seed(s) measured nothing: NaN)" if unmeasured else ""),
        unmeasured=unmeasured,
    )


def _first_conv_as_the_notebook_computes_it(probe: Probe) -> Any:
    """The first Conv2D, skipping the claim unless it is ReLU(valid stride-1 cross-correlation of the input + b)."""
    skip_unless(probe.layout.missing("conv1"))
    model = probe.run.model
    layer = model.layers[probe.layout.conv1]
    config = layer.get_config()
    wanted = {"padding": "valid", "strides": (1, 1), "dilation_rate": (1, 1), "groups": 1, "use_bias": True}
    differs = [
        f"{k}={config.get(k)!r}"
        for k, v in wanted.items()
        if np.atleast_1d(config.get(k, v)).tolist() != np.atleast_1d(v).tolist()
    ]
    if differs:
        skip_unless(f"its first Conv2D has {', '.join(differs)}; the reference computes a 'valid', stride-1 one")
    if not isinstance(layer.input._keras_history.operation, keras.layers.InputLayer):
        skip_unless("its first Conv2D does not take the input image directly")
    skip_unless(relu_missing(model, probe.layout.conv1))
    return layer


def feature_map_errors(probe: Probe, images: np.ndarray, operand_u: float) -> tuple[bool, dict[str, Any]]:
    """One seed's first-conv maps against ReLU(valid cross-correlation + bias) computed in float64: whether their
    shape is the expected one, and per image the largest error and its ratio to the rounding bound."""
    layer = _first_conv_as_the_notebook_computes_it(probe)
    kernel, bias = layer.get_weights()
    expected = (26, 26, 32)
    if probe.run.spec.model_source:
        expected = (28 - layer.kernel_size[0] + 1, 28 - layer.kernel_size[1] + 1, layer.filters)
    errors, ratios = [], []
    for image, maps in zip(images, probe.conv1, strict=True):
        reference = np.maximum(analysis.conv_valid(image, kernel, bias), 0.0)
        error = np.abs(maps.astype(np.float64) - reference)
        bound = analysis.conv_error_bound(image, kernel, bias, operand_unit_roundoff=operand_u)
        errors.append(float(error.max()))
        ratios.append(float(np.max(error / np.maximum(bound, np.finfo(np.float64).tiny))))
    row = {
        "seed": probe.run.spec.seed,
        "shape": (1, *probe.conv1.shape[1:]),
        "max_abs_error": errors,
        "error_over_bound": ratios,
        "max_abs_map": float(np.abs(probe.conv1).max()),
    }
    return probe.conv1.shape == (len(images), *expected), row


@pytest.mark.claim("feature-maps-are-filters", runs=(recipes.improved,), question=QUESTION_FEATURE_MAPS)
def test_feature_maps_are_filtered_images(claim, seeds, mnist, probes, probe_indices):
    """ "Relate these activation with the filters you have visualized previously."

    Each feature map of the first conv layer is the input image cross-correlated with one filter,
    plus its bias, through ReLU. For 31727 and four random training examples, layers[0]'s output
    (26, 26, 32) per image, the notebook's (1, 26, 26, 32) for one, must equal
    ReLU(scipy.signal.correlate2d(x, W[:, :, 0, k], "valid") + b[k]), computed independently in
    float64, up to floating-point rounding. Tolerance, elementwise: Higham's a-priori bound for a
    10-term dot product (9 products + bias) in float32, gamma_10 * (|x| * |W| + |b|) with
    gamma_10 = 10u/(1 - 10u), u = 2^-24 ~ 6e-7 relative to the magnitudes (inputs are in [-1, 1]),
    widened to (1 + 2^-11)^2 (1 + gamma_10) - 1 where a GPU rounds conv operands to TF32. Any
    element outside that bound on any seed or example refutes the claim (feature_maps_rule).
    A student's model: its first Conv2D, if it takes the input image directly with ReLU (its own, or an
    Activation('relu') layer right after it, as in the notebook's basic CNN), stride 1 and 'valid' padding
    (what the reference computes), its expected shape following its own kernel size and filters; otherwise
    the claim skips, naming what differs.
    """
    operand_u = backend.conv_operand_roundoff()
    images = mnist.X_train[probe_indices][..., 0]
    shapes_ok, rows = zip(*(feature_map_errors(probe, images, operand_u) for probe in probes), strict=True)
    max_errors = [float(np.max(r["max_abs_error"])) for r in rows]
    worst_ratios = [float(np.max(r["error_over_bound"])) for r in rows]
    first = probes[0]
    claim.save_arrays(
        image=images[0] + mnist.X_mean[:, :, 0],
        filters=first.run.model.layers[first.layout.conv1].get_weights()[0],
        conv_maps=first.conv1[0],
    )
    ruling = feature_maps_rule(list(shapes_ok), worst_ratios)
    claim.uses(p.run for p in probes)
    claim.check(
        ruling,
        summary=f"maps {(1, *first.conv1.shape[1:])} = ReLU(x corr W_k + b_k) for {len(probe_indices)} images x "
        f"{len(probes)} seed(s): max abs error {np.max(max_errors):.2e}, at most {np.max(worst_ratios):.2f} "
        f"of the rounding bound",
        measured={"examples": probe_indices, "operand_unit_roundoff": operand_u, "per_seed": list(rows)},
        statistics={"max_abs_error": stats.summarize(max_errors), "error_over_bound": stats.summarize(worst_ratios)},
    )


@rule
def pooling_rule(differing: Sequence[int]) -> Ruling:
    """Exact identity (never inconclusive: a maximum rounds nothing): holds if, on every seed, layers[1]'s
    output has the expected shape and equals the 2x2 block maximum of layers[0]'s maps in every element
    (differing elements per seed; -1 marks a wrong shape)."""
    holds = bool(differing) and all(d == 0 for d in differing)
    return Ruling.fact(
        holds,
        "differing_elements",
        sum(abs(d) for d in differing),
        f"differing elements per seed {list(differing)} (-1: wrong shape)",
    )


def _pool_size_as_the_notebook_computes_it(probe: Probe) -> int:
    """The first pooling's block size, skipping the claim unless it takes non-overlapping square 'valid' blocks
    of the first Conv2D's activated maps (find_layers follows the graph to the pooling that takes them)."""
    skip_unless(probe.layout.missing("conv1", "pool1"))
    config = probe.run.model.layers[probe.layout.pool1].get_config()
    size, strides = tuple(config["pool_size"]), tuple(config["strides"] or config["pool_size"])
    if size[0] != size[1] or strides != size or config["padding"] != "valid":
        skip_unless(
            f"its first MaxPooling2D has pool_size={size}, strides={strides}, padding={config['padding']!r}; "
            "the reference takes non-overlapping square 'valid' blocks"
        )
    return int(size[0])


def pooling_row(probe: Probe, images: int) -> dict[str, Any]:
    """One seed's first pooling maps against the block maxima of its conv maps: elements that differ (-1: wrong
    shape) and the largest difference."""
    size, expected_shape = 2, (13, 13, 32)
    if probe.run.spec.model_source:
        size = _pool_size_as_the_notebook_computes_it(probe)
        expected_shape = (probe.conv1.shape[1] // size, probe.conv1.shape[2] // size, probe.conv1.shape[3])
    shape_ok = probe.pool1.shape == (images, *expected_shape)
    expected = np.stack([analysis.block_max_pool(maps, size) for maps in probe.conv1])
    return {
        "seed": probe.run.spec.seed,
        "shape": (1, *probe.pool1.shape[1:]),
        "differing_elements": int(np.sum(probe.pool1 != expected)) if shape_ok else -1,
        "max_abs_difference": float(np.abs(probe.pool1 - expected).max()) if shape_ok else None,
    }


@pytest.mark.claim(
    "pooling-maps", runs=(recipes.improved,), question="Q: Do the same with the output of the first max-pooling layer."
)
def test_pooling_maps_are_block_maxima(claim, seeds, probes, probe_indices):
    """ "Do the same with the output of the first max-pooling layer." (the notebook prints (1, 13, 13, 32))

    layers[1]'s output is (13, 13, 32) per image and equals, exactly, the maximum of each
    non-overlapping 2x2 block of the conv maps computed in the same pass (maps reshaped
    (13, 2, 13, 2, 32), max over axes 1 and 3). Taking a maximum rounds nothing, so the tolerance
    is zero: any differing element on any seed or probe image refutes it (pooling_rule).
    A student's model: the MaxPooling2D that takes its first Conv2D's activated maps (directly or through
    Dropout), if it pools them in non-overlapping square blocks ('valid'), its expected shape following its
    own pool size; otherwise the claim skips, naming what differs.
    """
    rows = [pooling_row(probe, len(probe_indices)) for probe in probes]
    mismatches = [r["differing_elements"] for r in rows]
    first = probes[0]
    claim.save_arrays(pool_maps=first.pool1[0])
    ruling = pooling_rule(mismatches)
    claim.uses(p.run for p in probes)
    claim.check(
        ruling,
        summary=f"pooling maps {(1, *first.pool1.shape[1:])}: 2x2 block maxima of the 26x26 conv maps, "
        f"{sum(mismatches)} differing elements over {len(probe_indices)} images x {len(probes)} seed(s)",
        measured={"examples": probe_indices, "per_seed": rows},
    )


@rule
def deeper_layer_rule(rows: Sequence[dict]) -> Ruling:
    """Exact identity: on every seed layers[3] is a Conv2D whose output is (n_images, 11, 11, 64) with no negative
    value (ReLU). Refuted by any seed that differs; a seed whose minimum is NaN measured nothing: no evidence, so
    the claim is inconclusive unless another seed refutes it."""
    lowest = np.asarray([r["min"] for r in rows], dtype=float)
    ok = [
        r["layer"] == "Conv2D" and tuple(r["shape"]) == (r["images"], 11, 11, 64) and not low < 0.0
        for r, low in zip(rows, lowest, strict=True)
    ]
    return Ruling.fact(
        bool(ok) and all(ok),
        "seeds_not_matching",
        ok.count(False),
        f"layers[3] {sorted({r['layer'] for r in rows})}, shapes {sorted({tuple(r['shape']) for r in rows})}, "
        f"min activation {np.min(lowest) if lowest.size else math.nan:.3g}",
        unmeasured=bool(np.isnan(lowest).any()),
    )


def deeper_row(probe: Probe, images: int) -> dict[str, Any]:
    """One seed's layers[3]: its type, output shape, lowest activation and share of zeros."""
    return {
        "seed": probe.run.spec.seed,
        "layer": type(probe.run.model.layers[probe.layout.conv2]).__name__,
        "images": images,
        "shape": probe.conv2.shape,
        "min": float(probe.conv2.min()),
        "zero_fraction": float(np.mean(probe.conv2 == 0)),
    }


@pytest.mark.claim(
    "deeper-layer-shape",
    runs=(recipes.improved,),
    question="Bonus question: if you had several convolutional layers in your network, visualize them too.",
)
def test_second_conv_layer_maps(claim, seeds, probes, probe_indices):
    """ "Bonus question: if you had several convolutional layers in your network, visualize them too."
    (the notebook prints (1, 11, 11, 64) for model.layers[3])

    layers[3] is the second Conv2D (64 filters, 3x3, valid, ReLU) applied to the 13x13 pooled maps,
    so its output is (1, 11, 11, 64) per image, with no negative value (ReLU). Exact shape and
    sign check on every seed (deeper_layer_rule). About the notebook's own layers[3]: skips for a
    student's model (--model), whose second conv layer's shape is whatever its configuration says.
    """
    if models.replaced("improved_cnn"):
        skip_unless("the claim is the notebook's layers[3] output shape (1, 11, 11, 64)")
    rows = [deeper_row(probe, len(probe_indices)) for probe in probes]
    ruling = deeper_layer_rule(rows)
    first, zero = probes[0], [r["zero_fraction"] for r in rows]
    claim.save_arrays(conv2_maps=first.conv2[0])
    claim.uses(p.run for p in probes)
    claim.check(
        ruling,
        summary=f"layers[3] ({rows[0]['layer']}) maps {(1, *first.conv2.shape[1:])}; "
        f"{np.mean(zero):.0%} of its activations on the probe images are zero",
        measured={"per_seed": rows},
        statistics={"zero_fraction": stats.summarize(zero)},
    )


@rule
def edge_rule(
    trained: Sequence[float], initial: Sequence[float], random: Sequence[float], alpha: float = stats.ALPHA
) -> Ruling:
    """Mean edge score (Sobel-template energy share) of each seed's 32 trained first-layer filters, paired by
    seed with the same filters at initialisation and with 512 scale-matched random filters: holds if the
    trained mean exceeds both (one-sided paired t-tests over seeds at alpha), refuted if either test
    finds it lower at alpha/2, else inconclusive."""
    vs_init = stats.compare(trained, initial, alpha=alpha).test
    vs_random = stats.compare(trained, random, alpha=alpha).test
    return Ruling.of_tests(
        {"edge_score_trained_minus_initial": vs_init, "edge_score_trained_minus_random": vs_random},
        f"edge score trained - initial {vs_init.describe(3)}; trained - random {vs_random.describe(3)}",
    )


@dataclass(frozen=True)
class EdgeScores:
    """Per seed: the mean edge score of the first layer's trained filters, of the same filters at initialisation and
    of random ones (the rule's three), each seed's row of scores and tests, the first seed's arrays, the runs."""

    runs: list[Any]
    rows: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]
    trained: list[float]
    initial: list[float]
    random: list[float]


def edge_scores(run: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One seed's edge scores (analysis.gradient_energy_share) of its first Conv2D's trained filters, the same filters
    at initialisation, and RANDOM_FILTERS_PER_FILTER scale-matched random filters per trained one (rng seeded by
    the seed); skips the claim unless the filters are 3x3 over one channel. Returns its row and its arrays."""
    layout = models.find_layers(run.model)
    skip_unless(layout.missing("conv1"))
    trained = run.model.layers[layout.conv1].get_weights()[0]
    if trained.shape[:3] != (3, 3, 1):
        skip_unless(f"its first Conv2D's kernel is {trained.shape}; the edge score needs 3x3 filters over one channel")
    initial = run.initial_model().layers[layout.conv1].get_weights()[0]
    rng = np.random.default_rng(run.spec.seed)
    sd = trained[:, :, 0, :].std(axis=(0, 1))
    filters = trained.shape[3]
    random = (rng.standard_normal((3, 3, 1, filters, RANDOM_FILTERS_PER_FILTER)) * sd[:, None]).reshape(3, 3, 1, -1)
    s_trained, s_init, s_random = (analysis.gradient_energy_share(f) for f in (trained, initial, random))
    row = {
        "seed": run.spec.seed,
        "filters": filters,
        "mean_score_trained": float(s_trained.mean()),
        "mean_score_initial": float(s_init.mean()),
        "mean_score_random": float(s_random.mean()),
        "median_score_trained": float(np.median(s_trained)),
        "filters_above_half_trained": int(np.sum(s_trained > 0.5)),
        "filters_above_half_initial": int(np.sum(s_init > 0.5)),
        "p_trained_gt_initial_wilcoxon": float(sps.wilcoxon(s_trained, s_init, alternative="greater").pvalue),
        "p_trained_gt_random_mannwhitney": float(sps.mannwhitneyu(s_trained, s_random, alternative="greater").pvalue),
    }
    arrays = dict(
        filters=trained, filters_init=initial, score_trained=s_trained, score_init=s_init, score_random=s_random
    )
    return row, arrays


def edge_scores_of(runs: list[Any]) -> EdgeScores:
    """The edge scores of every seed's run, with the first seed's arrays."""
    rows, arrays = zip(*(edge_scores(run) for run in runs), strict=True)
    means = ([r[f"mean_score_{k}"] for r in rows] for k in ("trained", "initial", "random"))
    return EdgeScores(runs, list(rows), arrays[0], *means)


def describe_edges(m: EdgeScores, ruling: Ruling) -> Description:
    """filters-detect-edges's summary and record: the three mean scores, the rule's tests, the paired comparisons
    and the first seed's filters above 0.5."""
    s0 = m.rows[0]
    return {
        "summary": f"mean edge score trained {np.mean(m.trained):.2f} vs initial {np.mean(m.initial):.2f} vs random "
        f"{np.mean(m.random):.2f} (chance 0.25); {ruling.headline['text']}; seed {s0['seed']}: "
        f"{s0['filters_above_half_trained']}/{s0['filters']} filters > 0.5",
        "measured": {"random_filters_per_seed": RANDOM_FILTERS_PER_FILTER * s0["filters"], "per_seed": m.rows},
        "statistics": {
            "mean_score_trained_vs_initial": stats.compare(m.trained, m.initial, alpha=ruling.alpha),
            "mean_score_trained_vs_random": stats.compare(m.trained, m.random, alpha=ruling.alpha),
        },
    }


@pytest.mark.claim(
    "filters-detect-edges",
    runs=(recipes.improved,),
    question="Q: Visualize with imshow() each of the 16 filters of the first convolutional layer. "
    "Interpret what kind of operation they perform on the image.",
)
def test_filters_detect_edges(claim, runs):
    """ "Visualize with imshow() each of the 16 filters of the first convolutional layer. Interpret
    what kind of operation they perform on the image."

    The usual interpretation: the first-layer filters are oriented edge (contrast) detectors,
    i.e. local first derivatives of the image. Measure: each 3x3 filter's mean (its response to
    uniform brightness) is removed, and the score is the share of the remaining energy explained by
    the best oriented Sobel template cos(t) Sx + sin(t) Sy, i.e. the projection onto span{Sx, Sy}
    (fixtures.analysis.gradient_energy_share): 1 for a pure edge detector, 2/8 = 0.25 expected for
    an isotropic random filter. Training must have made the filters more edge-like than they
    started and than chance. Per seed, the mean score of layers[0]'s 32 filters, of the same
    filters at initialisation, and of 512 random Gaussian filters (16 per trained filter, sd
    matched to it, rng seeded by the seed); the rule (edge_rule) compares the means over seeds.
    Reported as context: per seed, one-sided Wilcoxon (trained vs initial, 32 pairs) and
    Mann-Whitney (trained vs random) p-values. A student's model: its first Conv2D, if its filters are
    3x3 over the one input channel (what the Sobel templates score); otherwise the claim skips.
    """
    measured, ruling = claim.decide(lambda seeds: edge_scores_of(improved_runs(runs, seeds)), edge_rule)
    claim.save_arrays(**measured.arrays)
    claim.check(ruling, **describe_edges(measured, ruling))


# --- The ambiguous example and how often ambiguities happen --------------------------------


@rule
def one_or_seven_rule(label: int, probabilities: np.ndarray, alpha: float = stats.ALPHA) -> Ruling:
    """Example 31727 "could be a 1 or 7": refuted if its label is not 1; otherwise, per seed, margin =
    min(p(1), p(7)) minus the larger of RUNNER_UP = 0.1 (chance level among 10 digits) and the largest other
    class's probability: above 0 exactly when the two most probable digits are 1 and 7 and the runner-up of the
    two has at least 0.1. Holds if the mean margin is above 0 by a one-sided t-test over seeds at alpha, refuted
    if below 0, else inconclusive."""
    p = np.asarray(probabilities, dtype=float)
    if label != 1:
        return Ruling.fact(False, "label", label, f"labelled {label}, not 1")
    others = np.maximum(np.delete(p, [1, 7], axis=1).max(axis=1), RUNNER_UP)
    test = stats.one_sided(np.minimum(p[:, 1], p[:, 7]) - others, 0.0, alpha=alpha)
    return Ruling.of_tests(
        {"margin_1_7_over_others": test}, f"min(p1, p7) - max({RUNNER_UP}, other) {test.describe(3)}"
    )


@dataclass(frozen=True)
class Example31727:
    """31727's label, and per seed the improved CNN's probe and softmax output for it."""

    label: int
    probes: list[Probe]
    probabilities: np.ndarray

    @property
    def runs(self) -> list[Any]:
        return [p.run for p in self.probes]


def describe_31727(m: Example31727, ruling: Ruling) -> Description:
    """ambiguous-31727's summary and record: per seed the prediction, the top two classes, p(1) and p(7)."""
    rows = [
        {
            "seed": pr.run.spec.seed,
            "prediction": int(p.argmax()),
            "top2": sorted(int(c) for c in np.argsort(p)[-2:]),
            "p1": float(p[1]),
            "p7": float(p[7]),
            "probabilities": p,
        }
        for pr, p in zip(m.probes, m.probabilities, strict=True)
    ]
    return {
        "summary": f"label {m.label}; {ruling.headline['text']}; predictions {[r['prediction'] for r in rows]}, top-2 "
        f"{[r['top2'] for r in rows]}, p(1) {[round(r['p1'], 3) for r in rows]}, "
        f"p(7) {[round(r['p7'], 3) for r in rows]}",
        "measured": {"index": EXAMPLE, "label": m.label, "per_seed": rows},
        "statistics": {"p1": stats.summarize([r["p1"] for r in rows]), "p7": stats.summarize([r["p7"] for r in rows])},
    }


@pytest.mark.claim(
    "ambiguous-31727",
    runs=(recipes.improved,),
    question="Q: Print what the model predict for it, its true label, and visualize the "
    "probabilities in the softmax output layer (look at the doc of model.predict()):",
)
def test_example_31727_is_a_one_or_a_seven(claim, runs, mnist, probe):
    """ "This example could be a 1 or 7. That is why you will never get 100% accuracy on MNIST:
    some examples are hard even for humans…"

    Training example 31727 is labelled 1 (the notebook prints 1). If it could be a 1 or a 7, the
    model's two most probable classes for it are {1, 7}, and the less probable of the two still has a
    real chance, at least RUNNER_UP = 0.1. Per seed: the softmax output of the improved CNN, its arg-max
    (the prediction), its top two classes, and the margin of {1, 7} over the other classes and over
    0.1, which the rule (one_or_seven_rule) decides on.
    """

    def measure(seeds: list[int]) -> Example31727:
        probes_ = [probe(run) for run in improved_runs(runs, seeds)]
        first = np.stack([p.probabilities[0] for p in probes_])  # probe 0: EXAMPLE
        return Example31727(int(mnist.t_train[EXAMPLE]), probes_, first)

    measured, ruling = claim.decide(measure, one_or_seven_rule)
    image = mnist.X_train[EXAMPLE][:, :, 0] + mnist.X_mean[:, :, 0]
    claim.save_arrays(image=image, probabilities=measured.probabilities)
    claim.check(ruling, **describe_31727(measured, ruling))


@rule
def ambiguities_rare_rule(fractions: Sequence[float], n_test: int, alpha: float = stats.ALPHA) -> Ruling:
    """A test example is ambiguous when the model gives a second digit at least a 1-in-10 chance (runner-up
    softmax probability >= 0.1); ambiguities happen "often" at 1 example in 20 or more. Fraction ambiguous
    over seeds, its standard error widened in quadrature by the binomial error of one n_test-example
    fraction, taken at 0.05, the fraction the test is against: holds (not often) if the mean is below 0.05 by a
    one-sided t-test at alpha, refuted if above, else inconclusive."""
    se = stats.binomial_se(OFTEN, n_test)
    test = stats.one_sided(fractions, OFTEN, higher_is_better=False, alpha=alpha, extra_se=se)
    return Ruling.of_tests({"ambiguous_fraction": test}, f"ambiguous fraction {test.describe(4)}")


@dataclass(frozen=True)
class Ambiguities:
    """Per seed the share of the `n_test` test examples that are ambiguous and the row it comes from, and the runs."""

    runs: list[Any]
    rows: list[dict[str, Any]]
    fractions: list[float]
    n_test: int


def ambiguity_row(run: Any, labels: np.ndarray) -> dict[str, Any]:
    """One seed's ambiguous test examples (runner-up softmax probability >= RUNNER_UP) and error rates beside them."""
    p = run.test_probabilities
    if p.shape != (len(labels), 10):
        raise AssertionError(f"{run.spec.label}: test probabilities {p.shape} do not match {len(labels)} labels")
    ambiguous = np.sort(p, axis=1)[:, -2] >= RUNNER_UP
    wrong = p.argmax(axis=1) != labels
    return {
        "seed": run.spec.seed,
        "ambiguous": int(ambiguous.sum()),
        "fraction": float(ambiguous.mean()),
        "error_rate": float(wrong.mean()),
        "error_rate_if_ambiguous": float(wrong[ambiguous].mean()) if ambiguous.any() else None,
        "error_rate_if_confident": float(wrong[~ambiguous].mean()),
        "share_of_errors_ambiguous": float(ambiguous[wrong].mean()) if wrong.any() else None,
    }


def ambiguities(runs: list[Any], labels: np.ndarray) -> Ambiguities:
    rows = [ambiguity_row(run, labels) for run in runs]
    return Ambiguities(runs, rows, [r["fraction"] for r in rows], len(labels))


def describe_ambiguities(m: Ambiguities, ruling: Ruling) -> Description:
    """ambiguities-rare's summary and record: the ambiguous fraction and the error rate per seed."""
    errors = [r["error_rate"] for r in m.rows]
    return {
        "summary": f"ambiguous (runner-up p >= {RUNNER_UP}): {[f'{f:.2%}' for f in m.fractions]} of {m.n_test}; "
        f"{ruling.headline['text']}; error rate {[f'{e:.2%}' for e in errors]}",
        "measured": {
            "runner_up_at_least": RUNNER_UP,
            "often_from": OFTEN,
            "n_test": m.n_test,
            "fraction": m.fractions,
            "error_rate": errors,
            "per_seed": m.rows,
        },
        "statistics": {"fraction": stats.summarize(m.fractions), "error_rate": stats.summarize(errors)},
    }


@pytest.mark.claim(
    "ambiguities-rare",
    runs=(recipes.improved,),
    question="Q: Visualize the output of the network for different examples. Do these ambiguities happen often?",
)
def test_ambiguities_are_rare(claim, runs):
    """ "Q: Visualize the output of the network for different examples. Do these ambiguities happen
    often?" (implied answer: no, "some examples are hard even for humans")

    An example is ambiguous like 31727 when the model gives a second digit a real chance: a
    runner-up softmax probability of at least 0.1 (31727's p(7) was 0.295, 0.295 and 0.171 at seeds
    0-2, TF 2.21 CPU). This counts doubtful examples, not only near-ties, so a model with few errors
    can still be ambiguous often. Measured per seed on the test set (the store's, so a subset under the smoke
    profile) from the softmax outputs saved at training time: the fraction of ambiguous examples,
    and the error rate beside it. Rule: ambiguities_rare_rule ("often": 1 in 20 or more).
    """
    labels = np.asarray(runs.data.t_test)
    measured, ruling = claim.decide(
        lambda seeds: ambiguities(improved_runs(runs, seeds), labels), ambiguities_rare_rule
    )
    p = measured.runs[0].test_probabilities
    least_confident = np.argsort(p.max(axis=1), kind="stable")[:LEAST_CONFIDENT_KEPT]
    claim.save_arrays(
        images=runs.data.x_test_raw[least_confident],
        labels=labels[least_confident],
        probabilities=p[least_confident],
        indices=least_confident,
    )
    claim.check(ruling, **describe_ambiguities(measured, ruling))


# --- Deeper layers ---------------------------------------------------------------------------


def _channel_statistics(model: Any, x: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """Per-example spatial mean of each channel of the first two Conv2D layers' activated maps (layers 0 and 3 in
    the notebook), and each layer's zero fraction; skips the claim unless both exist and end in ReLU."""
    layout = models.find_layers(model)
    skip_unless(layout.missing("conv1", "conv2"))
    for conv in (layout.conv1, layout.conv2):
        skip_unless(relu_missing(model, conv))
    maps = [model.layers[models.activated(model, conv)[0]] for conv in (layout.conv1, layout.conv2)]
    sub = keras.Model(model.inputs, [layer.output for layer in maps])
    means: list[list[np.ndarray]] = [[], []]
    zeros, sizes = [0, 0], [0, 0]
    for start in range(0, len(x), ACTIVATION_BATCH):
        for i, a in enumerate(sub.predict_on_batch(x[start : start + ACTIVATION_BATCH])):
            a = np.asarray(a)
            means[i].append(a.mean(axis=(1, 2)))
            zeros[i] += int(np.count_nonzero(a == 0))
            sizes[i] += a.size
    return [np.concatenate(m) for m in means], [z / s for z, s in zip(zeros, sizes, strict=True)]


@rule
def deeper_specific_rule(conv2: Sequence[float], conv1: Sequence[float], alpha: float = stats.ALPHA) -> Ruling:
    """Mean class selectivity index (Morcos et al. 2018) of layers[3]'s live channels minus layers[0]'s,
    paired by seed: holds if above 0 by a one-sided paired t-test over seeds at alpha, refuted if below 0,
    else inconclusive."""
    test = stats.compare(conv2, conv1, alpha=alpha).test
    return Ruling.of_tests({"selectivity_conv2_minus_conv1": test}, f"selectivity conv2 - conv1 {test.describe(3)}")


@dataclass(frozen=True)
class Selectivity:
    """Per seed the mean class selectivity of layers[0]'s and layers[3]'s live channels (the rule's two) and the row
    they come from, the first seed's selectivities, the runs, and the test examples measured on."""

    runs: list[Any]
    rows: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]
    conv1: list[float]
    conv2: list[float]
    n_test: int


def selectivity_row(run: Any, x: np.ndarray, labels: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One seed's class selectivity (Morcos et al. 2018) of both conv layers' live channels, their dead channels and
    sparsity, and a Mann-Whitney p-value over channels; with its selectivities as arrays."""
    (m1, m2), (z1, z2) = _channel_statistics(run.model, x)
    si1, si2 = (analysis.selectivity_index(analysis.class_means(m, labels)) for m in (m1, m2))
    live1, live2 = si1[~np.isnan(si1)], si2[~np.isnan(si2)]
    row = {
        "seed": run.spec.seed,
        "mean_selectivity_conv1": float(live1.mean()),
        "mean_selectivity_conv2": float(live2.mean()),
        "median_selectivity_conv1": float(np.median(live1)),
        "median_selectivity_conv2": float(np.median(live2)),
        "max_selectivity_conv1": float(live1.max()),
        "max_selectivity_conv2": float(live2.max()),
        "dead_channels_conv1": int(np.isnan(si1).sum()),
        "dead_channels_conv2": int(np.isnan(si2).sum()),
        "zero_fraction_conv1": z1,
        "zero_fraction_conv2": z2,
        "p_conv2_gt_conv1_mannwhitney": float(sps.mannwhitneyu(live2, live1, alternative="greater").pvalue),
    }
    return row, dict(selectivity_conv1=si1, selectivity_conv2=si2)


def selectivities(runs: list[Any], x: np.ndarray, labels: np.ndarray) -> Selectivity:
    rows, arrays = zip(*(selectivity_row(run, x, labels) for run in runs), strict=True)
    means = ([r[f"mean_selectivity_{k}"] for r in rows] for k in ("conv1", "conv2"))
    return Selectivity(runs, list(rows), arrays[0], *means, len(labels))


def describe_selectivity(m: Selectivity, ruling: Ruling) -> Description:
    """deeper-features-specific's summary and record: both layers' mean selectivity and sparsity, per seed."""
    sparse1, sparse2 = [r["zero_fraction_conv1"] for r in m.rows], [r["zero_fraction_conv2"] for r in m.rows]
    return {
        "summary": f"mean selectivity conv2 {np.mean(m.conv2):.3f} vs conv1 {np.mean(m.conv1):.3f}; "
        f"{ruling.headline['text']}; zero activations conv2 {np.mean(sparse2):.0%} vs conv1 {np.mean(sparse1):.0%}",
        "measured": {"n_test": m.n_test, "arrays_from_seed": m.rows[0]["seed"], "per_seed": m.rows},
        "statistics": {
            "mean_selectivity_conv2_vs_conv1": stats.compare(m.conv2, m.conv1, alpha=ruling.alpha),
            "zero_fraction_conv1": stats.summarize(sparse1),
            "zero_fraction_conv2": stats.summarize(sparse2),
        },
    }


@pytest.mark.claim("deeper-features-specific", runs=(recipes.improved,), question=QUESTION_DEEPER)
def test_deeper_features_are_more_class_specific(claim, runs):
    """ "Bonus question: if you had several convolutional layers in your network, visualize them too.
    What do you think of the specificity of some features?"

    The expected answer: features of the second conv layer are more specific (to digit classes,
    shapes) than the first layer's generic edges. Measure, on the test set: each channel's
    activation (after ReLU) averaged over positions per example, its class-conditional means, and
    the class selectivity index of Morcos et al. 2018, (mu_max - mu_rest) / (mu_max + mu_rest),
    for layers[0] (32 channels) and layers[3] (64 channels); dead channels (never active) have
    none and are left out. Per seed the mean over live channels; the rule (deeper_specific_rule)
    compares them over seeds. Reported as context: per seed, a one-sided Mann-Whitney p-value over
    channels, and each layer's sparsity (fraction of zero activations). Arrays: seed 0's selectivities.
    A student's model: its first two Conv2D layers, if both end in ReLU, their own or an Activation('relu')
    layer right after each (the index needs non-negative activations); otherwise the claim skips.
    """
    x, labels = runs.data.X_test, np.asarray(runs.data.t_test)
    measured, ruling = claim.decide(
        lambda seeds: selectivities(improved_runs(runs, seeds), x, labels), deeper_specific_rule
    )
    claim.save_arrays(**measured.arrays)
    claim.check(ruling, **describe_selectivity(measured, ruling))
