"""The notebook's claims about the models' structure: shapes and parameter counts, no training."""

from __future__ import annotations

import keras
import pytest

from fixtures import models
from fixtures.evidence import Verdict

QUESTION_PARAMS = ("Q: Which layer has the most parameters? Why? "
                   "Compare with the fully-connected MLPs you obtained during exercise 5.")


def _params(model) -> list[int]:
    return [layer.count_params() for layer in model.layers]


def _shapes(model) -> list[list[int]]:
    return [list(layer.output.shape[1:]) for layer in model.layers]


def _measured(name: str, model) -> dict:
    return {"model": name, "layers": models.layer_table(model), "total": model.count_params()}


@pytest.mark.claim("arch-basic-param-counts", question="print(model.summary())")
def test_basic_cnn_summary(claim):
    """The basic CNN's summary: 160, 0, 0, 0, 270500, 0, 1010, 0 parameters (271,670 in all);
    outputs (26,26,16) after the valid 3x3 convolution, (13,13,16) after pooling, 2704 after Flatten.

    "Note the use of Flatten() to transform the 13x13x16 tensor representing the max-pooling layer
    into a vector of 2704 elements."
    """
    model = models.basic_cnn()
    expected_params = [160, 0, 0, 0, 270500, 0, 1010, 0]
    shapes = _shapes(model)
    holds = (_params(model) == expected_params and model.count_params() == 271_670
             and shapes[0] == [26, 26, 16] and shapes[2] == [13, 13, 16] and shapes[3] == [2704])
    claim.check(
        Verdict.of(holds),
        rule="per-layer parameter counts and output shapes equal the notebook's summary exactly",
        summary=f"params {_params(model)} (total {model.count_params():,}); conv {shapes[0]}, "
                f"pool {shapes[2]}, flatten {shapes[3]}",
        measured=_measured("basic CNN (padding='valid')", model),
    )


@pytest.mark.claim("arch-same-padding",
                   question="Change it to padding='same' and conclude on its effect.")
def test_same_padding_keeps_size(claim):
    """"Note also the use of padding='valid' and its effect on the size of the tensor corresponding
    to the convolutional layer. Change it to padding='same' and conclude on its effect."

    Expected: 'same' keeps 28x28 (valid loses the 1-pixel border: 26x26), so pooling gives 14x14,
    Flatten 3136 and the first Dense layer 313,700 parameters instead of 270,500.
    """
    valid, same = models.basic_cnn("valid"), models.basic_cnn("same")

    def sizes(model) -> dict:
        shapes = _shapes(model)
        return {"conv": shapes[0], "pool": shapes[2], "flatten": shapes[3][0],
                "dense_params": model.layers[4].count_params()}

    v, s = sizes(valid), sizes(same)
    holds = (s == {"conv": [28, 28, 16], "pool": [14, 14, 16], "flatten": 3136, "dense_params": 313_700}
             and v["flatten"] == 2704)
    growth = s["dense_params"] / v["dense_params"] - 1
    claim.check(
        Verdict.of(holds),
        rule="'same' output shapes are (28,28,16), (14,14,16), 3136 and the Dense layer has 313,700 params",
        summary=(f"'same' pads the border so the conv output stays {s['conv'][:2]} instead of {v['conv'][:2]}; "
                 f"Flatten grows {v['flatten']} -> {s['flatten']} and the Dense layer "
                 f"{v['dense_params']:,} -> {s['dense_params']:,} params (+{growth:.0%})"),
        measured={"valid": v, "same": s, **_measured("basic CNN (padding='same')", same)},
    )


@pytest.mark.claim("arch-conv-params-per-filter", question=QUESTION_PARAMS)
def test_conv_layer_has_ten_params_per_filter(claim):
    """"conv layers have relatively few parameters (10 per filter)."

    A 3x3 filter over one input channel has 3*3*1 weights + 1 bias = 10; 16 filters give 160.
    """
    conv = models.basic_cnn().layers[0]
    kernel, bias = conv.get_weights()
    per_filter = (kernel[..., 0].size + bias[:1].size)
    holds = kernel.shape == (3, 3, 1, 16) and per_filter == 10 and conv.count_params() == 16 * 10
    claim.check(
        Verdict.of(holds),
        rule="kernel (3,3,1,16) and bias (16,): 3*3*1+1 = 10 parameters per filter",
        summary=f"kernel {kernel.shape}, bias {bias.shape}: {per_filter} params per filter, "
                f"{conv.count_params()} for the layer",
        measured={"kernel_shape": kernel.shape, "bias_shape": bias.shape, "per_filter": per_filter},
    )


@pytest.mark.claim("arch-dense-bottleneck", question=QUESTION_PARAMS)
def test_dense_after_flatten_is_the_bottleneck(claim):
    """"The main bottleneck is when going from convolutions to fully-connected."

    The Dense layer right after Flatten holds the largest share of the basic CNN's parameters.
    """
    model = models.basic_cnn()
    params = _params(model)
    largest = max(range(len(params)), key=params.__getitem__)
    share = params[largest] / model.count_params()
    holds = isinstance(model.layers[largest - 1], keras.layers.Flatten) and share > 0.5
    claim.check(
        Verdict.of(holds),
        rule="the layer with the most parameters is the Dense right after Flatten, holding over half of them",
        summary=f"{model.layers[largest].name} (after Flatten) holds {params[largest]:,} of "
                f"{model.count_params():,} parameters ({share:.1%}); the conv layer {params[0]} ({params[0] / model.count_params():.2%})",
        measured={**_measured("basic CNN", model), "largest_layer": model.layers[largest].name, "share": share},
    )


@pytest.mark.claim("arch-vs-mlp", question=QUESTION_PARAMS)
def test_basic_cnn_vs_mlp_parameters(claim):
    """"Compare with the fully-connected MLPs you obtained during exercise 5."

    Against the MLP baseline (Flatten -> Dense 100 -> Dense 10): the conv + pool stage feeds the
    Dense layer 2704 inputs instead of 784, so the CNN has about 3.4x the parameters, nearly all in that Dense layer.
    """
    cnn, mlp = models.basic_cnn(), models.mlp()
    ratio = cnn.count_params() / mlp.count_params()
    holds = mlp.count_params() == 79_510 and cnn.count_params() > mlp.count_params()
    claim.check(
        Verdict.of(holds),
        rule="MLP baseline has 784*100+100 + 100*10+10 = 79,510 params, fewer than the basic CNN's",
        summary=f"basic CNN {cnn.count_params():,} vs MLP {mlp.count_params():,} params ({ratio:.2f}x); "
                f"first Dense layer: CNN {cnn.layers[4].count_params():,} vs MLP {mlp.layers[1].count_params():,}",
        measured={**_measured("MLP baseline", mlp), "cnn_total": cnn.count_params(), "ratio": ratio},
    )


@pytest.mark.claim("arch-improved-param-counts",
                   question="add another block on convolution + max-pooling before the fully-connected "
                            "layer to reduce the number of parameters")
def test_improved_cnn_summary(claim):
    """"add another block on convolution + max-pooling before the fully-connected layer to reduce
    the number of parameters"

    The improved CNN's summary: 320, 18496, 240150, 1510 in its weighted layers (260,476 in all),
    fewer than the basic CNN's 271,670 although it has one more conv block.
    """
    model = models.improved_cnn()
    weighted = [p for p in _params(model) if p]
    basic_total = models.basic_cnn().count_params()
    holds = weighted == [320, 18496, 240150, 1510] and model.count_params() == 260_476 < basic_total
    claim.check(
        Verdict.of(holds),
        rule="weighted layers have 320, 18496, 240150, 1510 params and the total is below the basic CNN's",
        summary=f"weighted layers {weighted}, total {model.count_params():,} < basic CNN {basic_total:,} "
                f"(Flatten gives {_shapes(model)[6][0]} features instead of 2704)",
        measured=_measured("improved CNN", model),
    )
