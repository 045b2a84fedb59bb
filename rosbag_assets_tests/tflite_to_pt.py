"""Rebuild a trainable PyTorch YOLO11n (.pt) from the shared COCO YOLO11n int8 TFLite model, for tests.

Fine-tuning, base-vs-fine-tuned evaluation and export parity all need a PyTorch detector that really detects,
and no such weights may be downloaded. The shared TFLite file holds YOLO11n's weights (int8, per-channel
scales, BatchNorm folded into the conv biases). This copies them, dequantized, into Ultralytics' own
``yolo11n.yaml`` model: each PyTorch conv is paired with the TFLite conv of the same weight shape whose input
activation (from one TFLite run on bus.jpg) is closest to the PyTorch input at that point, so the pairing
follows the data flow rather than two graphs' op orders. The folded bias goes into the BatchNorm as an
identity-plus-bias, which keeps the model trainable (unfused). The result predicts what the TFLite model
predicts (tests check this), licence as the source model (AGPL-3.0, an Ultralytics export).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PROBE_SIZE = 640


def _tflite_convs(tflite: Path, image_rgb: np.ndarray) -> list[dict]:
    """Every conv of the TFLite graph: float weights (OIHW), bias and its input activation (NCHW) on the image."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        model_path=str(tflite),
        experimental_preserve_all_tensors=True,  # intermediate activations stay readable
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,  # XNNPACK hides them
    )
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], image_rgb[None])
    it.invoke()
    details = {t["index"]: t for t in it.get_tensor_details()}
    convs = []
    for op in it._get_ops_details():
        if op["op_name"] not in {"CONV_2D", "DEPTHWISE_CONV_2D"}:
            continue
        w_info = details[op["inputs"][1]]
        w = it.get_tensor(w_info["index"]).astype(np.float32)
        quant = w_info["quantization_parameters"]
        if w_info["dtype"] == np.int8:
            shape = [1] * w.ndim
            shape[quant["quantized_dimension"]] = -1
            w = (w - quant["zero_points"].reshape(shape)) * quant["scales"].reshape(shape)
        depthwise = op["op_name"] == "DEPTHWISE_CONV_2D"
        w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)  # [1,H,W,O] / OHWI -> OIHW
        convs.append(
            {
                "weight": np.ascontiguousarray(w),
                "bias": it.get_tensor(op["inputs"][2]).astype(np.float32),
                "input": it.get_tensor(op["inputs"][0]).transpose(0, 3, 1, 2).copy(),
                "used": False,
            }
        )
    return convs


def convert_tflite_yolo11n(tflite: Path, out_pt: Path, probe_image: Path) -> Path:
    """Write an Ultralytics checkpoint of yolo11n with the TFLite model's weights and class names."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.modules.conv import Conv
    from ultralytics.nn.tasks import DetectionModel

    names = dict(YOLO(str(tflite), task="detect").names)
    bgr = cv2.imread(str(probe_image))
    rgb = cv2.resize(bgr, (PROBE_SIZE, PROBE_SIZE))[:, :, ::-1].astype(np.float32) / 255
    convs = _tflite_convs(tflite, rgb)

    model = DetectionModel("yolo11n.yaml", nc=len(names), verbose=False).eval()
    batchnorm = {id(m.conv): m.bn for m in model.modules() if isinstance(m, Conv)}
    dfl = model.model[-1].dfl.conv
    paired = []

    def load_matching(conv: torch.nn.Conv2d, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].numpy()
        pad = conv.padding[0]
        best, best_err = None, np.inf
        for c in convs:
            if c["used"] or c["weight"].shape != tuple(conv.weight.shape):
                continue
            cx = c["input"]
            if cx.shape != x.shape and pad and cx.shape[2:] == tuple(s + 2 * pad for s in x.shape[2:]):
                cx = cx[:, :, pad:-pad, pad:-pad]  # the TFLite graph pads explicitly before strided convs
            if cx.shape != x.shape:
                continue
            err = float(np.abs(cx - x).max() / (np.abs(x).max() + 1e-6))
            if err < best_err:
                best, best_err = c, err
        if best is None:
            raise ValueError(f"no TFLite conv matches PyTorch conv {tuple(conv.weight.shape)} in {tflite}")
        best["used"] = True
        paired.append(best_err)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(best["weight"]))
            bn = batchnorm.get(id(conv))
            if bn is None:
                conv.bias.copy_(torch.from_numpy(best["bias"]))
            else:  # BN(x) = x + bias: eval-mode identity carrying the folded bias
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(best["bias"]))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)

    hooks = [
        m.register_forward_pre_hook(load_matching)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d) and m is not dfl
    ]
    with torch.no_grad():
        model(torch.from_numpy(rgb.transpose(2, 0, 1)[None].copy()))
    for hook in hooks:
        hook.remove()
    if len(paired) != len(convs) - 1:  # every TFLite conv but the fixed DFL one
        raise ValueError(f"paired {len(paired)} of {len(convs) - 1} TFLite convs from {tflite}")
    model.names = names
    out_pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "train_args": {"task": "detect", "imgsz": 640}, "epoch": -1}, out_pt)
    return out_pt
