"""Every claim's rule reaches each of its verdicts on planted measurements, and no claim lacks such a test.

Each test is marked `rule_of(<claim id>)`; the meta-test at the end fails when a claim in claims/
has no rule test under tests/.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from claims import test_analysis as analysis
from claims import test_architecture as architecture
from claims import test_training as training
from fixtures import models
from fixtures.claim import Verdict
from fixtures.stats import rise_above_running_min

REPO = Path(__file__).resolve().parent.parent
H, R, I = Verdict.HOLDS, Verdict.REFUTED, Verdict.INCONCLUSIVE


def _check(ruling, expected: Verdict) -> None:
    """The verdict, plus what every verdict must carry: a headline, and `detectable` when undecided."""
    assert ruling.verdict is expected, ruling.headline["text"]
    assert ruling.headline["values"] and ruling.headline["text"]
    if expected is I and ruling.headline["higher_is_better"] is not None:
        assert ruling.detectable is not None and ruling.detectable["power"] == 0.8


# --- training claims --------------------------------------------------------------------------


@pytest.mark.rule_of("overfitting-signature")
@pytest.mark.parametrize(
    "gaps, expected",
    [
        ([0.010, 0.011, 0.012], H),
        ([-0.010, -0.011, -0.012], R),
        ([0.010, -0.010, 0.002], I),
    ],
)
def test_overfitting_rule(gaps, expected):
    _check(training.overfitting_rule(gaps), expected)


@pytest.mark.rule_of("cnn-vs-mlp-accuracy")
@pytest.mark.parametrize(
    "cnn, fc, expected",
    [
        ([0.985, 0.986, 0.987], [0.975, 0.977, 0.976], H),
        ([0.975, 0.977, 0.976], [0.985, 0.986, 0.987], R),
        ([0.985, 0.976, 0.981], [0.980, 0.981, 0.979], I),
    ],
)
def test_cnn_beats_mlp_rule(cnn, fc, expected):
    _check(training.cnn_beats_mlp_rule(cnn, fc), expected)


@pytest.mark.rule_of("batch-small-unstable")
@pytest.mark.parametrize(
    "rise16, rise128, expected",
    [
        ([0.30, 0.40, 0.35], [-0.02, -0.03, -0.01], H),
        ([1.0, 0.80, 0.90], [-0.02, -0.03, -0.01], H),  # a diverged seed counts as the cap, not NaN
        ([-0.02, -0.03, -0.025], [0.30, 0.35, 0.40], R),  # 16 more stable than 128
        ([-0.02, -0.01, -0.03], [-0.05, -0.04, -0.06], R),  # batch 16 never rises again
        ([2.5e-7, 1e-7, 3e-7], [-0.05, -0.04, -0.06], R),  # float-noise rises are not "increases again"
        ([0.001, 0.0012, 0.0009], [-0.05, -0.04, -0.06], R),  # nor are 0.1% rises
        ([0.30, -0.02, 0.06], [-0.02, -0.01, -0.03], I),
    ],
    ids=["unstable", "diverged", "16-more-stable", "never-rises", "float-noise", "tiny-rises", "mixed"],
)
def test_small_batch_unstable_rule(rise16, rise128, expected):
    _check(training.small_batch_unstable_rule(rise16, rise128), expected)


@pytest.mark.rule_of("batch-small-unstable")
def test_small_batch_rule_decides_on_diverged_curves():
    diverged = [
        rise_above_running_min(c, training.RISE_CAP)
        for c in ([2.0, 1.0, math.nan], [2.0, 1.0, 1.6, 1.2], [2.0, 1.0, math.inf])
    ]
    stable = [rise_above_running_min(c, training.RISE_CAP) for c in ([2.0, 1.0, 0.5], [2.0, 1.1, 0.5], [2.0, 1.0, 0.6])]
    assert diverged == [1.0, pytest.approx(0.6), 1.0]
    assert training.small_batch_unstable_rule(diverged, stable).verdict is H


@pytest.mark.rule_of("batch-128-beats-64")
@pytest.mark.parametrize(
    "t128, t64, v128, v64, expected",
    [
        ([0.989, 0.988, 0.990], [0.986, 0.985, 0.9865], [0.990, 0.989, 0.991], [0.987, 0.9865, 0.988], H),
        ([0.984, 0.982, 0.985], [0.989, 0.988, 0.990], [0.990, 0.989, 0.991], [0.987, 0.9865, 0.988], R),
        ([0.989, 0.988, 0.990], [0.986, 0.985, 0.9865], [0.990, 0.986, 0.988], [0.987, 0.9895, 0.988], I),
    ],
    ids=["both-favour-128", "test-favours-64", "val-undecided"],
)
def test_batch_128_rule(t128, t64, v128, v64, expected):
    _check(training.batch_128_rule(t128, t64, v128, v64), expected)


@pytest.mark.rule_of("improved-99")
@pytest.mark.parametrize(
    "accuracies, n_test, expected",
    [
        ([0.9905, 0.9910, 0.9915], 10_000, H),
        ([0.9750, 0.9760, 0.9770], 10_000, R),  # below the band
        ([0.9990, 0.9992, 0.9991], 1_000_000, R),  # above it: "around" is two-sided
        ([0.9940, 0.9955, 0.9950], 10_000, I),  # straddles its upper edge
        ([0.9905, 0.9910, 0.9915], 200, I),  # a small test set cannot place it
    ],
    ids=["inside", "below", "above", "at-edge", "small-test-set"],
)
def test_around_99_rule(accuracies, n_test, expected):
    ruling = training.around_99_rule(accuracies, n_test)
    _check(ruling, expected)
    assert ruling.headline["higher_is_better"] is None


@pytest.mark.rule_of("improved-no-overfit")
@pytest.mark.parametrize(
    "gaps, expected",
    [
        ([-0.003, -0.002, -0.0025], H),
        ([0.0030, 0.0015, 0.0040], R),  # the numbers: 0.0029 [0.0015, 0.0043]
        ([0.002, -0.002, 0.001], I),
    ],
)
def test_no_overfit_rule(gaps, expected):
    ruling = training.no_overfit_rule(gaps)
    _check(ruling, expected)
    assert ruling.headline["higher_is_better"] is False


# --- analysis claims ---------------------------------------------------------------------------


def _shape_row(model="improved", kernel=(3, 3, 1, 32), expected=(3, 3, 1, 32), bias=(32,), filters=32):
    return {
        "model": model,
        "seed": 0,
        "kernel": kernel,
        "bias": bias,
        "expected_kernel": expected,
        "kernel_size": (3, 3),
        "input_channels": 1,
        "filters": filters,
    }


@pytest.mark.rule_of("weight-shapes")
@pytest.mark.parametrize(
    "rows, expected",
    [
        ([_shape_row(), _shape_row("basic", (3, 3, 1, 16), (3, 3, 1, 16), (16,), 16)], H),
        ([_shape_row(), _shape_row("basic", (3, 3, 1, 32), (3, 3, 1, 16), (32,), 32)], R),  # wrong model's kernel
        ([_shape_row(bias=(16,))], R),
        ([], R),  # nothing checked proves nothing
    ],
)
def test_weight_shapes_rule(rows, expected):
    _check(analysis.weight_shapes_rule(rows), expected)


@pytest.mark.rule_of("feature-maps-are-filters")
@pytest.mark.parametrize(
    "shapes_ok, ratios, expected",
    [
        ([True, True], [0.02, 0.9], H),
        ([True, True], [0.02, 1.5], R),  # one element outside its rounding bound
        ([True, False], [0.02, 0.1], R),
        ([], [], R),
    ],
)
def test_feature_maps_rule(shapes_ok, ratios, expected):
    _check(analysis.feature_maps_rule(shapes_ok, ratios), expected)


@pytest.mark.rule_of("pooling-maps")
@pytest.mark.parametrize("differing, expected", [([0, 0, 0], H), ([0, 3, 0], R), ([0, -1], R), ([], R)])
def test_pooling_rule(differing, expected):
    _check(analysis.pooling_rule(differing), expected)


def _conv2_row(layer="Conv2D", shape=(5, 11, 11, 64), minimum=0.0):
    return {"seed": 0, "layer": layer, "images": 5, "shape": shape, "min": minimum, "zero_fraction": 0.5}


@pytest.mark.rule_of("deeper-layer-shape")
@pytest.mark.parametrize(
    "rows, expected",
    [
        ([_conv2_row(), _conv2_row()], H),
        ([_conv2_row(), _conv2_row(layer="MaxPooling2D")], R),
        ([_conv2_row(shape=(5, 13, 13, 64))], R),
        ([_conv2_row(minimum=-0.1)], R),
    ],
)
def test_deeper_layer_rule(rows, expected):
    _check(analysis.deeper_layer_rule(rows), expected)


@pytest.mark.rule_of("filters-detect-edges")
@pytest.mark.parametrize(
    "trained, initial, random, expected",
    [
        ([0.43, 0.45, 0.41], [0.25, 0.26, 0.24], [0.25, 0.26, 0.255], H),
        ([0.20, 0.21, 0.19], [0.25, 0.26, 0.24], [0.25, 0.26, 0.255], R),
        ([0.43, 0.45, 0.41], [0.25, 0.26, 0.24], [0.45, 0.40, 0.43], I),  # not above chance
    ],
    ids=["edge-like", "less-than-init", "random-as-good"],
)
def test_edge_rule(trained, initial, random, expected):
    _check(analysis.edge_rule(trained, initial, random), expected)


def _probabilities(p7s, p4s):
    rows = []
    for p7, p4 in zip(p7s, p4s, strict=True):
        p = np.full(10, 0.001)
        p[7], p[4] = p7, p4
        p[1] = 1 - p.sum() + 0.001
        rows.append(p)
    return np.array(rows)


@pytest.mark.rule_of("ambiguous-31727")
@pytest.mark.parametrize(
    "label, probabilities, expected",
    [
        (1, _probabilities([0.25, 0.20, 0.30], [0.01, 0.02, 0.01]), H),
        (1, _probabilities([0.01, 0.02, 0.01], [0.25, 0.20, 0.30]), R),  # the runner-up is a 4, not a 7
        (4, _probabilities([0.25, 0.20, 0.30], [0.01, 0.02, 0.01]), R),  # not labelled 1
        (1, _probabilities([0.25, 0.05, 0.30], [0.01, 0.20, 0.01]), I),  # seeds disagree
    ],
)
def test_one_or_seven_rule(label, probabilities, expected):
    _check(analysis.one_or_seven_rule(label, probabilities), expected)


@pytest.mark.rule_of("ambiguities-rare")
@pytest.mark.parametrize(
    "fractions, expected",
    [
        ([0.020, 0.021, 0.019], H),
        ([0.090, 0.100, 0.095], R),
        ([0.045, 0.050, 0.055], I),
    ],
)
def test_ambiguities_rare_rule(fractions, expected):
    ruling = analysis.ambiguities_rare_rule(fractions, 10_000)
    _check(ruling, expected)
    assert ruling.headline["higher_is_better"] is False


@pytest.mark.rule_of("deeper-features-specific")
@pytest.mark.parametrize(
    "conv2, conv1, expected",
    [
        ([0.40, 0.42, 0.41], [0.20, 0.21, 0.19], H),
        ([0.20, 0.21, 0.19], [0.40, 0.42, 0.41], R),
        ([0.40, 0.20, 0.31], [0.30, 0.31, 0.29], I),
    ],
)
def test_deeper_specific_rule(conv2, conv1, expected):
    _check(analysis.deeper_specific_rule(conv2, conv1), expected)


# --- architecture claims (exact identities: holds or refuted, never inconclusive) --------------


@pytest.fixture(scope="module")
def tables() -> dict:
    return {
        "basic": models.layer_table(models.basic_cnn()),
        "same": models.layer_table(models.basic_cnn("same")),
        "mlp": models.layer_table(models.mlp()),
        "improved": models.layer_table(models.improved_cnn()),
    }


def _with(table: list[dict], index: int, **changes) -> list[dict]:
    return [{**row, **changes} if i == index else row for i, row in enumerate(table)]


@pytest.mark.rule_of("arch-basic-param-counts")
def test_basic_summary_rule(tables):
    _check(architecture.basic_summary_rule(tables["basic"]), H)
    _check(architecture.basic_summary_rule(_with(tables["basic"], 4, params=270_501)), R)
    _check(architecture.basic_summary_rule(_with(tables["basic"], 3, output_shape=[3136])), R)


@pytest.mark.rule_of("arch-same-padding")
def test_same_padding_rule(tables):
    _check(architecture.same_padding_rule(tables["basic"], tables["same"]), H)
    _check(architecture.same_padding_rule(tables["basic"], tables["basic"]), R)  # 'same' that changed nothing


@pytest.mark.rule_of("arch-conv-params-per-filter")
def test_params_per_filter_rule():
    _check(architecture.params_per_filter_rule((3, 3, 1, 16), (16,), 160), H)
    _check(architecture.params_per_filter_rule((5, 5, 1, 16), (16,), 416), R)
    _check(architecture.params_per_filter_rule((3, 3, 1, 16), (16,), 144), R)  # a layer without biases


@pytest.mark.rule_of("arch-dense-bottleneck")
def test_bottleneck_rule(tables):
    _check(architecture.bottleneck_rule(tables["basic"]), H)
    _check(architecture.bottleneck_rule(_with(tables["basic"], 0, params=400_000)), R)  # the conv is largest


@pytest.mark.rule_of("arch-vs-mlp")
def test_largest_layer_rule(tables):
    _check(architecture.largest_layer_rule(tables["basic"], tables["mlp"]), H)
    _check(architecture.largest_layer_rule(tables["basic"], _with(tables["mlp"], 2, params=90_000)), R)
    _check(architecture.largest_layer_rule(tables["basic"], _with(tables["mlp"], 1, params=300_000)), R)


@pytest.mark.rule_of("arch-improved-param-counts")
def test_improved_summary_rule(tables):
    basic_total = sum(row["params"] for row in tables["basic"])
    _check(architecture.improved_summary_rule(tables["improved"], basic_total), H)
    _check(architecture.improved_summary_rule(tables["improved"], 200_000), R)  # no fewer than the basic CNN


# --- the meta-test ----------------------------------------------------------------------------


def _marker_ids(path: Path, marker: str) -> set[str]:
    """First string arguments of every `pytest.mark.<marker>(...)` call in a Python file."""
    ids = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == marker
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "mark"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            ids.add(node.args[0].value)
    return ids


def claims_without_rule_test(root: Path) -> list[str]:
    """Claim ids under root/claims that no `rule_of` marker under root/tests names."""
    claims = set().union(*(_marker_ids(p, "claim") for p in (root / "claims").glob("*.py")))
    ruled = set().union(*(_marker_ids(p, "rule_of") for p in (root / "tests").glob("*.py")))
    return sorted(claims - ruled)


def test_every_claim_has_a_rule_test():
    assert len(_marker_ids(REPO / "claims" / "test_training.py", "claim")) >= 7  # the parser sees the claims
    assert claims_without_rule_test(REPO) == []


PLANTED_CLAIM = """
import pytest

@pytest.mark.claim("known")
def test_known(claim): ...

@pytest.mark.claim("planted-without-rule", question="Q?")
def test_planted(claim): ...
"""

PLANTED_RULE_TEST = """
import pytest

@pytest.mark.rule_of("known")
def test_rule(): ...
"""


def test_meta_test_fails_on_a_planted_claim_without_rule_test(pytester: pytest.Pytester):
    pytester.mkdir("claims").joinpath("test_planted.py").write_text(PLANTED_CLAIM)
    pytester.mkdir("tests").joinpath("test_planted_rules.py").write_text(PLANTED_RULE_TEST)
    pytester.makepyfile(
        test_meta=f"""
from pathlib import Path
import sys
sys.path.insert(0, {str(REPO)!r})
from tests.test_rules import claims_without_rule_test

def test_every_claim_has_a_rule_test():
    assert claims_without_rule_test(Path({str(pytester.path)!r})) == []
"""
    )
    result = pytester.runpytest_subprocess("test_meta.py", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*planted-without-rule*"])
    assert "'known'" not in result.stdout.str()
