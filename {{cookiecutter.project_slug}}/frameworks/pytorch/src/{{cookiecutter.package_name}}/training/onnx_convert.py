"""The model in ONNX, for serving from ONNX Runtime: exported with `torch.onnx`.

The exported graph is the network, its imputing and one-hot encoding included, in double
precision like the network, with the number of rows left free: a classifier's followed by a
softmax (its output `probabilities`), a regressor's in the target's units (`values`).
"""

import logging
import warnings
from typing import Any

import torch

from ..core.model import Regressor
from ..core.runtime import ONNX_OUTPUT, ONNX_VALUES

CONVERTER = "torch.onnx"
OPSET = 18


class Probabilities(torch.nn.Module):
    """The network's logits turned into class probabilities, the output ONNX Runtime gives."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.network(rows)
        return logits.softmax(dim=1)


def converter_version() -> str:
    return str(torch.__version__)


def convert(model: Any, features: int) -> bytes:
    """The fitted network as an ONNX model with one input [rows, features] and an output: a
    classifier's `probabilities` [rows, classes], a regressor's `values` [rows, 1]."""
    module: torch.nn.Module
    if isinstance(model, Regressor):
        assert model.network is not None, "fit the model first"
        module, output = model.network, ONNX_VALUES
    else:
        module, output = Probabilities(model.network), ONNX_OUTPUT
    example = torch.zeros((2, features), dtype=torch.float64)
    # The exporter warns about optional packages (torchvision) and its own deprecations:
    # nothing a user of this project can act on, so training's output stays clean.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                module.eval(),
                (example,),
                input_names=["input"],
                output_names=[output],
                dynamic_shapes=({0: torch.export.Dim("rows")},),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    assert program is not None, "the dynamo exporter returns the exported program"
    return bytes(program.model_proto.SerializeToString())
