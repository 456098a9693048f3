"""Constant-output ONNX stand-ins for insightface's five antelopev2 files, so that insightface's real loading and
detection code runs without the weights (which cannot be downloaded in tests).

insightface routes each file by its input size and outputs: a 640² SCRFD-shaped detector (scores, boxes and
five-point landmarks for strides 8, 16, 32; one face, at `FACE_IN_DETECTOR_FRAME`), a 192² model with 106 landmark
points, and three 112² models. Every output is a constant (plus 0 × the input's mean, so the graph uses its
input). Needs the `onnx` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The face in the detector's 640² frame; for scikit-image's 512² astronaut (scaled by 1.25) it is
# FACE_IN_512 = (176, 64, 272, 176).
FACE_IN_DETECTOR_FRAME = (220, 80, 340, 220)
FACE_IN_512 = (176, 64, 272, 176)
SCORE = 0.9


def _save(path: Path, input_side: int, outputs: list[np.ndarray]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["input.1"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.array(0, np.float32), "zero")]
    outs = []
    for i, arr in enumerate(outputs):
        inits.append(numpy_helper.from_array(arr.astype(np.float32), f"c{i}"))
        nodes.append(helper.make_node("Add", [f"c{i}", "z"], [f"out{i}"]))
        outs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "input.1", TensorProto.FLOAT, [1, 3, input_side, input_side])], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def write(folder: Path) -> Path:
    """Write the five files into `folder` (created); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    x0, y0, x1, y1 = FACE_IN_DETECTOR_FRAME
    scores, boxes, points = [], [], []
    for stride in (8, 16, 32):
        cells = 640 // stride
        s, b, k = np.zeros((cells * cells * 2, 1)), np.zeros((cells * cells * 2, 4)), np.zeros((cells * cells * 2, 10))
        if stride == 32:
            i = int((y0 + y1) / 2 // 32) * cells + int((x0 + x1) / 2 // 32)
            ax, ay = (i % cells) * 32, (i // cells) * 32
            s[2 * i] = SCORE
            b[2 * i] = [(ax - x0) / 32, (ay - y0) / 32, (x1 - ax) / 32, (y1 - ay) / 32]
            k[2 * i] = np.ravel([((x0 + x1) / 2 - ax) / 32, ((y0 + y1) / 2 - ay) / 32] * 5)
        scores.append(s), boxes.append(b), points.append(k)
    _save(folder / "scrfd_10g_bnkps.onnx", 640, scores + boxes + points)
    t = np.linspace(0, 2 * np.pi, 106, endpoint=False)
    _save(folder / "2d106det.onnx", 192, [np.stack([0.8 * np.cos(t), 0.9 * np.sin(t)], 1).reshape(1, 212)])
    for name in ("1k3d68.onnx", "genderage.onnx", "glintr100.onnx"):
        _save(folder / name, 112, [np.zeros((1, 512))])
    return folder
