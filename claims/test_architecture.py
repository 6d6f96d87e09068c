"""The notebook's claims about the models' structure: shapes and parameter counts, no training.

Each rule is a pure function of layer tables (models.layer_table: name, type, output shape,
parameter count per layer) next to its claim. They are exact structural identities of the built
models, with nothing random in them, so they hold or are refuted and are never inconclusive.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from fixtures import models
from fixtures.claim import Ruling, rule

QUESTION_PARAMS = (
    "Q: Which layer has the most parameters? Why? Compare with the fully-connected MLPs you obtained during exercise 5."
)
Table = list[dict[str, Any]]


def _params(table: Table) -> list[int]:
    return [row["params"] for row in table]


def _shapes(table: Table) -> list[list[int]]:
    return [row["output_shape"] for row in table]


def _largest_after_flatten(table: Table) -> tuple[int, bool]:
    """Index of the layer with the most parameters, and whether it directly follows a Flatten."""
    largest = max(range(len(table)), key=lambda i: table[i]["params"])
    return largest, largest > 0 and table[largest - 1]["type"] == "Flatten"


def notebook_models_only(*names: str) -> None:
    """These claims are the notebook's exact numbers for its own models: skip where --model replaced one."""
    for name in names:
        if models.replaced(name):
            pytest.skip(
                f"about the notebook's {name} (its exact layers and parameters); this session replaced it "
                f"by {models.replaced(name)}"
            )


def _measured(name: str, table: Table) -> dict:
    return {"model": name, "layers": table, "total": sum(_params(table))}


@rule
def basic_summary_rule(table: Table) -> Ruling:
    """Exact identity (never inconclusive): per-layer parameters 160, 0, 0, 0, 270500, 0, 1010, 0 (271,670
    in all) and outputs (26,26,16) after the conv, (13,13,16) after pooling, 2704 after Flatten."""
    params, shapes = _params(table), _shapes(table)
    holds = (
        params == [160, 0, 0, 0, 270500, 0, 1010, 0]
        and sum(params) == 271_670
        and shapes[0] == [26, 26, 16]
        and shapes[2] == [13, 13, 16]
        and shapes[3] == [2704]
    )
    return Ruling.fact(
        holds,
        "total_params",
        sum(params),
        f"params {params} (total {sum(params):,}); conv {shapes[0]}, pool {shapes[2]}, flatten {shapes[3]}",
    )


@pytest.mark.claim("arch-basic-param-counts", question="print(model.summary())")
def test_basic_cnn_summary(claim):
    """The basic CNN's summary: 160, 0, 0, 0, 270500, 0, 1010, 0 parameters (271,670 in all);
    outputs (26,26,16) after the valid 3x3 convolution, (13,13,16) after pooling, 2704 after Flatten.

    "Note the use of Flatten() to transform the 13x13x16 tensor representing the max-pooling layer
    into a vector of 2704 elements." Rule: basic_summary_rule on the built model.
    """
    notebook_models_only("basic_cnn")
    table = models.layer_table(models.basic_cnn())
    ruling = basic_summary_rule(table)
    claim.check(
        ruling,
        measured=_measured("basic CNN (padding='valid')", table),
    )


def _padding_sizes(table: Table) -> dict:
    """The basic CNN's conv, pool and Flatten outputs and its first Dense layer's parameters."""
    shapes = _shapes(table)
    return {"conv": shapes[0], "pool": shapes[2], "flatten": shapes[3][0], "dense_params": table[4]["params"]}


@rule
def same_padding_rule(valid: Table, same: Table) -> Ruling:
    """Exact identity (never inconclusive): with padding='same' the outputs are (28,28,16), (14,14,16) and
    3136 after Flatten, and the first Dense layer has 313,700 parameters; with 'valid' Flatten gives 2704."""
    v, s = _padding_sizes(valid), _padding_sizes(same)
    holds = (
        s == {"conv": [28, 28, 16], "pool": [14, 14, 16], "flatten": 3136, "dense_params": 313_700}
        and v["flatten"] == 2704
    )
    growth = s["dense_params"] / v["dense_params"] - 1
    return Ruling.fact(
        holds,
        "same_dense_params",
        s["dense_params"],
        f"'same' pads the border so the conv output stays {s['conv'][:2]} instead of {v['conv'][:2]}; "
        f"Flatten grows {v['flatten']} -> {s['flatten']} and the Dense layer "
        f"{v['dense_params']:,} -> {s['dense_params']:,} params (+{growth:.0%})",
    )


@pytest.mark.claim("arch-same-padding", question="Change it to padding='same' and conclude on its effect.")
def test_same_padding_keeps_size(claim):
    """ "Note also the use of padding='valid' and its effect on the size of the tensor corresponding
    to the convolutional layer. Change it to padding='same' and conclude on its effect."

    Expected: 'same' keeps 28x28 (valid loses the 1-pixel border: 26x26), so pooling gives 14x14,
    Flatten 3136 and the first Dense layer 313,700 parameters instead of 270,500. Rule: same_padding_rule.
    """
    notebook_models_only("basic_cnn")
    valid, same = models.layer_table(models.basic_cnn("valid")), models.layer_table(models.basic_cnn("same"))
    ruling = same_padding_rule(valid, same)
    claim.check(
        ruling,
        measured={
            "valid": _padding_sizes(valid),
            "same": _padding_sizes(same),
            **_measured("basic CNN (padding='same')", same),
        },
    )


@rule
def params_per_filter_rule(kernel_shape: tuple[int, ...], bias_shape: tuple[int, ...], layer_params: int) -> Ruling:
    """Exact identity (never inconclusive): the first conv kernel is (3,3,1,16) with a (16,) bias, so each
    filter has 3*3*1 weights + 1 bias = 10 parameters and the layer 16 * 10 = 160."""
    per_filter = math.prod(kernel_shape[:3]) + 1
    holds = (
        tuple(kernel_shape) == (3, 3, 1, 16)
        and tuple(bias_shape) == (16,)
        and per_filter == 10
        and layer_params == kernel_shape[3] * per_filter
    )
    return Ruling.fact(
        holds,
        "params_per_filter",
        per_filter,
        f"kernel {tuple(kernel_shape)}, bias {tuple(bias_shape)}: {per_filter} params per filter, "
        f"{layer_params} for the layer",
    )


@pytest.mark.claim("arch-conv-params-per-filter", question=QUESTION_PARAMS)
def test_conv_layer_has_ten_params_per_filter(claim):
    """ "conv layers have relatively few parameters (10 per filter)."

    A 3x3 filter over one input channel has 3*3*1 weights + 1 bias = 10; 16 filters give 160.
    Rule: params_per_filter_rule on the built layer's weights.
    """
    notebook_models_only("basic_cnn")
    conv = models.basic_cnn().layers[0]
    kernel, bias = conv.get_weights()
    ruling = params_per_filter_rule(kernel.shape, bias.shape, conv.count_params())
    claim.check(
        ruling,
        measured={"kernel_shape": kernel.shape, "bias_shape": bias.shape},
    )


MAJORITY = 0.5
"""The "main" bottleneck holds over half of the model's parameters, more than all other layers together: a
convention, since the largest share alone could be a plurality (say 30%) that leaves most parameters elsewhere."""


@rule
def bottleneck_rule(table: Table) -> Ruling:
    """Exact identity (never inconclusive): the layer with the most parameters is the Dense right after
    Flatten, and it holds over half of the model's parameters (MAJORITY = 0.5)."""
    largest, after_flatten = _largest_after_flatten(table)
    total = sum(_params(table))
    share = table[largest]["params"] / total
    holds = after_flatten and table[largest]["type"] == "Dense" and share > MAJORITY
    return Ruling.fact(
        holds,
        "largest_layer_share",
        share,
        f"{table[largest]['name']} ({table[largest]['type']}, after "
        f"{table[largest - 1]['type'] if largest else 'nothing'}) holds {table[largest]['params']:,} of "
        f"{total:,} parameters ({share:.1%}); the conv layer {table[0]['params']} "
        f"({table[0]['params'] / total:.2%})",
    )


@pytest.mark.claim("arch-dense-bottleneck", question=QUESTION_PARAMS)
def test_dense_after_flatten_is_the_bottleneck(claim):
    """ "The main bottleneck is when going from convolutions to fully-connected."

    The Dense layer right after Flatten is the basic CNN's largest layer and holds over half of its parameters
    (MAJORITY: "main" read as most of them, not only the largest share). Rule: bottleneck_rule.
    """
    notebook_models_only("basic_cnn")
    table = models.layer_table(models.basic_cnn())
    ruling = bottleneck_rule(table)
    claim.check(
        ruling,
        measured={**_measured("basic CNN", table), "share": ruling.headline["values"][0]},
    )


@rule
def largest_layer_rule(cnn: Table, mlp: Table) -> Ruling:
    """Exact identity (never inconclusive): in the basic CNN and in the MLP alike, the layer with the most
    parameters is the first Dense, right after Flatten, and the CNN's holds more than the MLP's because
    conv + pooling hand it more inputs (2704 instead of 784)."""
    (ci, c_ok), (mi, m_ok) = _largest_after_flatten(cnn), _largest_after_flatten(mlp)
    c_largest, m_largest = cnn[ci], mlp[mi]
    holds = (
        c_ok
        and m_ok
        and c_largest["type"] == m_largest["type"] == "Dense"
        and c_largest["params"] > m_largest["params"]
    )
    inputs = (cnn[ci - 1]["output_shape"], mlp[mi - 1]["output_shape"])
    return Ruling.fact(
        holds,
        "largest_layer_params_cnn_over_mlp",
        c_largest["params"] / m_largest["params"],
        f"largest layer: CNN {c_largest['name']} ({c_largest['type']}, {c_largest['params']:,} params, "
        f"{inputs[0]} inputs) vs MLP {m_largest['name']} ({m_largest['type']}, {m_largest['params']:,}, "
        f"{inputs[1]} inputs); totals CNN {sum(_params(cnn)):,} vs MLP {sum(_params(mlp)):,}",
    )


@pytest.mark.claim("arch-vs-mlp", question=QUESTION_PARAMS)
def test_basic_cnn_vs_mlp_parameters(claim):
    """ "Which layer has the most parameters? Why? Compare with the fully-connected MLPs you obtained
    during exercise 5."

    On the built basic CNN and MLP baseline (Flatten -> Dense 100 -> Dense 10): which layer holds the
    most parameters in each. Rule: largest_layer_rule.
    """
    notebook_models_only("basic_cnn", "mlp")
    cnn, fc = models.layer_table(models.basic_cnn()), models.layer_table(models.mlp())
    ruling = largest_layer_rule(cnn, fc)
    claim.check(
        ruling,
        measured={**_measured("MLP baseline", fc), "cnn_layers": cnn},
    )


@rule
def improved_summary_rule(table: Table, basic_total: int) -> Ruling:
    """Exact identity (never inconclusive): the weighted layers have 320, 18496, 240150, 1510 parameters
    (260,476 in all), fewer than the basic CNN's total."""
    weighted, total = [p for p in _params(table) if p], sum(_params(table))
    holds = weighted == [320, 18496, 240150, 1510] and total == 260_476 < basic_total
    flatten = next((row["output_shape"][0] for row in table if row["type"] == "Flatten"), None)
    return Ruling.fact(
        holds,
        "total_params",
        total,
        f"weighted layers {weighted}, total {total:,} vs basic CNN "
        f"{basic_total:,} (Flatten gives {flatten} features instead of 2704)",
    )


@pytest.mark.claim(
    "arch-improved-param-counts",
    question="add another block on convolution + max-pooling before the fully-connected "
    "layer to reduce the number of parameters",
)
def test_improved_cnn_summary(claim):
    """ "add another block on convolution + max-pooling before the fully-connected layer to reduce
    the number of parameters"

    The improved CNN's summary: 320, 18496, 240150, 1510 in its weighted layers (260,476 in all),
    fewer than the basic CNN's 271,670 although it has one more conv block. Rule: improved_summary_rule.
    """
    notebook_models_only("improved_cnn")
    table = models.layer_table(models.improved_cnn())
    ruling = improved_summary_rule(table, models.basic_cnn().count_params())
    claim.check(
        ruling,
        measured=_measured("improved CNN", table),
    )
