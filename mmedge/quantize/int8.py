"""INT8 pass: ONNX Runtime quantization of one component, in two flavours.

* ``tensorrt``: QDQ, symmetric int8 activations and weights (zero point 0), per-channel weights,
  float bias, Q/DQ only on the inputs/outputs of Conv/MatMul/Gemm — the placement TensorRT's
  explicit quantization fuses (checked by ``qdq_check``).
* ``cpu``: per component family (``CPU_SCHEMES``), measured on ONNX Runtime CPU (AVX512-VNNI):
  conv nets — static QDQ U8S8 per-channel on every quantizable op (fuses into QLinearConv, clearly
  faster than fp32; S8S8 is slower); transformers — dynamic per-channel int8 MatMul + int8 embedding
  Gather (faster and much smaller; static QDQ lost too much accuracy on MiniLM-L6); MLPs
  (fusion head) — static U8S8 on the Gemm/MatMul inputs only (quantizing the outputs too gave a much
  larger error for no speed gain). All measured on the edge preset.

Both keep in float32, via ``nodes_to_exclude`` (``qdq_check.float_nodes``):

* the audio front-end (everything up to the log-mel ``Log``): the power spectrum spans ~1e-6…1e4
  before the log, far beyond the 256 levels of one int8 scale, and the DFT/mel weights are fixed
  signal processing, not learned features;
* for static schemes, GELU-fed MatMul/Gemm (transformer FFN down-projections), whose inputs carry
  outlier channels; the dynamic scheme re-scales every call and quantizes them too.

Weights of every scheme are rounded by GPTQ on the calibration data (``weight_rounding``) unless
``rounding='nearest'``: on the edge preset it cut the layer output errors and the embedding error well
below round-to-nearest's. The cpu flavour of conv nets also keeps its first layers float where
measurement says it pays (``float_prefix``; up to ``float_prefix_macs`` of the MACs), which lowered the
edge image encoder's embedding error for a small latency cost (figures: README.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

from mmedge.errors import ExportError, InputError
from mmedge.io import atomic_path
from mmedge.quantize.calibration import FeedReader
from mmedge.quantize.float_prefix import require_share, search
from mmedge.quantize.fp16 import frontend_nodes
from mmedge.quantize.qdq_check import float_nodes
from mmedge.quantize.weight_rounding import (
    WeightedLayer,
    accumulate_hessians,
    require_rounding,
    round_weights,
    weighted_layers,
)

log = logging.getLogger(__name__)

TARGETS: tuple[str, ...] = ("cpu", "tensorrt")
METHODS: dict[str, CalibrationMethod] = {"minmax": CalibrationMethod.MinMax,
                                         "entropy": CalibrationMethod.Entropy,
                                         "percentile": CalibrationMethod.Percentile}
TRT_OP_TYPES: tuple[str, ...] = ("Conv", "MatMul", "Gemm")


@dataclass(frozen=True)
class Scheme:
    """How one component is quantized (recorded in the artifact settings)."""

    name: str
    static: bool
    activation_type: str  # "int8" | "uint8"
    weight_type: str
    symmetric_activations: bool
    per_channel: bool = True
    op_types: tuple[str, ...] = ()  # empty: every op type ONNX Runtime can quantize
    quantize_bias: bool = True
    gelu_float: bool = True  # keep GELU-fed projections float (per-tensor static scales cannot hold outliers)
    quantize_outputs: bool = True  # False: Q/DQ only on the inputs of the quantized ops
    rounding: str = "gptq"  # how int8 weights are rounded (weight_rounding.ROUNDINGS)
    float_prefix_macs: float = 0.0  # > 0: leading layers holding up to this share of MACs may stay float

    def to_json(self) -> dict[str, Any]:
        """Settings entry."""
        return asdict(self)


TRT_SCHEME = Scheme("qdq-s8s8-symmetric", True, "int8", "int8", True, op_types=TRT_OP_TYPES,
                    quantize_bias=False, quantize_outputs=False)
CPU_SCHEMES: dict[str, Scheme] = {
    "conv": Scheme("qdq-u8s8", True, "uint8", "int8", False, float_prefix_macs=0.5),
    "mlp": Scheme("qdq-u8s8-inputs", True, "uint8", "int8", False, op_types=("MatMul", "Gemm"),
                  quantize_outputs=False),
    "transformer": Scheme("dynamic-u8s8", False, "uint8", "int8", False, op_types=("MatMul", "Gather"),
                          gelu_float=False),
}
_QTYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}


def family(model: onnx.ModelProto) -> str:
    """'transformer' (Softmax attention over MatMuls), 'conv' (learned Conv layers) or 'mlp'."""
    ops = {n.op_type for n in model.graph.node}
    skip = set(frontend_nodes(model))
    if "Softmax" in ops and "MatMul" in ops and "LayerNormalization" in ops:
        return "transformer"
    if any(n.op_type == "Conv" and n.name not in skip for n in model.graph.node):
        return "conv"
    return "mlp"


def choose_scheme(target: str, model: onnx.ModelProto) -> Scheme:
    """The scheme for `target` ('tensorrt' or 'cpu') and this component's family."""
    if target == "tensorrt":
        return TRT_SCHEME
    if target == "cpu":
        return CPU_SCHEMES[family(model)]
    raise InputError(f"unknown target '{target}' (choose from: {', '.join(TARGETS)})")


def calibration_method(method: str) -> CalibrationMethod:
    """The ORT calibration method named `method`."""
    if method not in METHODS:
        raise InputError(f"unknown calibration method '{method}' (choose from: {', '.join(METHODS)})")
    return METHODS[method]


# quant_pre_process variants, tried in order: symbolic shape inference can fail on transformer masks
# (e.g. "Min(512, seq)"); auto_merge resolves that, and ONNX shape inference alone is the last resort.
PREPROCESS_MODES: tuple[tuple[str, dict[str, bool]], ...] = (
    ("symbolic", {}),
    ("symbolic-auto-merge", {"auto_merge": True}),
    ("onnx-shape-only", {"skip_symbolic_shape": True}),
)


@contextlib.contextmanager
def scratch_cwd() -> Iterator[None]:
    """Run inside a temporary working directory, removed afterwards.

    ONNX Runtime's pre-processing writes `sym_shape_infer_temp.onnx` and UUID-named external-data
    files into the current directory (and leaves them when symbolic shape inference fails).
    """
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="mmedge-quant-") as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(previous)


@contextlib.contextmanager
def quiet_shape_inference() -> Iterator[None]:
    """Hold back symbolic shape inference's warnings (e.g. "unsupported broadcast between Min(512, seq)").

    They describe shapes it leaves symbolic, which the quantizer does not need; a real failure raises,
    moves on to the next PREPROCESS_MODES entry, and the mode used is recorded in the settings.
    """
    logger = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def preprocess(src: Path, dst: Path) -> str:
    """ONNX Runtime's quantization pre-processing (shape inference, basic optimisation); returns the mode used."""
    errors = []
    src, dst = src.resolve(), dst.resolve()  # before scratch_cwd changes what relative paths mean
    for mode, kwargs in PREPROCESS_MODES:
        try:
            with scratch_cwd(), quiet_shape_inference():
                quant_pre_process(str(src), str(dst), skip_optimization=False, **kwargs)
            return mode
        except Exception as exc:  # symbolic shape inference raises assorted types
            errors.append(f"{mode}: {type(exc).__name__}: {exc}")
            log.info("quant_pre_process (%s) failed on %s: %s", mode, src.name, exc)
    raise ExportError(f"quantization pre-processing of {src.name} failed ({'; '.join(errors)})")


def unfolded_batchnorms(model: onnx.ModelProto) -> list[str]:
    """BatchNormalization nodes pre-processing could not fold into a Conv (e.g. a norm on the log-mel).

    They stay float: a per-channel affine gains nothing from int8, and ONNX Runtime's quantizer
    mis-handles their rank-1 scale ("Axis 1 is out-of-range").
    """
    return [n.name for n in model.graph.node if n.op_type == "BatchNormalization"]


def _round_weights(pre: Path, rounded: Path, layers: list[WeightedLayer], reader: FeedReader,
                   threads: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write `pre` with GPTQ-rounded int8 weights to `rounded`; return (quantizer overrides, summary)."""
    model = onnx.load(str(pre))
    overrides, summary = round_weights(model, layers, accumulate_hessians(model, layers, reader.feeds, threads))
    onnx.save(model, str(rounded))
    return overrides, summary


def _static(src: Path, dst: Path, scheme: Scheme, reader: CalibrationDataReader, method: str,
            exclude: list[str], overrides: dict[str, Any]) -> None:
    extra: dict[str, Any] = {"ActivationSymmetric": scheme.symmetric_activations, "WeightSymmetric": True,
                             "QuantizeBias": scheme.quantize_bias, "TensorQuantOverrides": overrides}
    if not scheme.quantize_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = list(scheme.op_types)
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    reader.rewind()
    quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ,
                    activation_type=_QTYPES[scheme.activation_type], weight_type=_QTYPES[scheme.weight_type],
                    per_channel=scheme.per_channel, calibrate_method=calibration_method(method),
                    op_types_to_quantize=list(scheme.op_types) or None, nodes_to_exclude=exclude,
                    extra_options=extra)


def _dynamic(src: Path, dst: Path, scheme: Scheme, exclude: list[str], overrides: dict[str, Any]) -> None:
    quantize_dynamic(str(src), str(dst), per_channel=scheme.per_channel,
                     weight_type=_QTYPES[scheme.weight_type],
                     op_types_to_quantize=list(scheme.op_types) or None, nodes_to_exclude=exclude,
                     extra_options={"TensorQuantOverrides": overrides})


def _quantize_graph(pre: Path, dst: Path, work: Path, scheme: Scheme, reader: FeedReader | None, method: str,
                    threads: int | None) -> dict[str, Any]:
    """Quantize the pre-processed graph `pre` into `dst`; return the settings this step decides."""
    pre_model = onnx.load(str(pre))
    exclude = float_nodes(pre_model) if scheme.gelu_float else frontend_nodes(pre_model)
    exclude = sorted({*exclude, *unfolded_batchnorms(pre_model)})
    layers = weighted_layers(pre_model, scheme.op_types or None, exclude)
    overrides: dict[str, Any] = {}
    source, rounded = pre, {"method": "nearest"}  # fp32 weights: round-to-nearest
    if scheme.rounding == "gptq" and reader is not None and layers:
        source = work / "rounded.onnx"
        overrides, rounded = _round_weights(pre, source, layers, reader, threads)
    prefix: dict[str, Any] | None = None
    if not scheme.static:
        _dynamic(source, dst, scheme, exclude, overrides)
        return {"weight_rounding": rounded, "float_prefix": prefix, "excluded_nodes": exclude}
    assert reader is not None

    def run(model: Path, out: Path, excluded: list[str], over: dict[str, Any]) -> None:
        _static(model, out, scheme, reader, method, excluded, over)

    if scheme.float_prefix_macs > 0 and layers:
        exclude, prefix = search(pre, source, dst, work, layers, exclude, overrides, reader.feeds, run,
                                 scheme.float_prefix_macs, threads)
    else:
        run(source, dst, exclude, overrides)
    return {"weight_rounding": rounded, "float_prefix": prefix, "excluded_nodes": exclude}


def quantize_int8(src: str | Path, dst: str | Path, reader: FeedReader | None, target: str = "cpu",
                  method: str = "minmax", scheme: Scheme | None = None, rounding: str | None = None,
                  threads: int | None = None, float_prefix_macs: float | None = None) -> dict[str, Any]:
    """Quantize `src` into `dst` (atomic); return the settings to record in the artifact.

    `rounding` ('gptq' or 'nearest') and `float_prefix_macs` (0 = none) override the scheme's.
    """
    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    scheme = scheme or choose_scheme(target, model)
    if rounding is not None:
        require_rounding(rounding)
        scheme = replace(scheme, rounding=rounding)
    if float_prefix_macs is not None:
        require_share(float_prefix_macs)
        if scheme.float_prefix_macs > 0:  # only schemes that search a prefix (conv nets, cpu) take one
            scheme = replace(scheme, float_prefix_macs=float_prefix_macs)
    calibration_method(method)
    if scheme.static and reader is None:
        raise InputError(f"{scheme.name} quantization of {src.name} needs calibration data (--calib)")
    if scheme.rounding == "gptq" and reader is None:
        log.warning("%s: no calibration data for GPTQ; int8 weights are rounded to nearest", src.name)
    with tempfile.TemporaryDirectory(prefix="mmedge-int8-") as scratch, atomic_path(dst) as tmp:
        pre = Path(scratch) / "pre.onnx"
        mode = preprocess(src, pre)
        try:
            decided = _quantize_graph(pre, tmp, Path(scratch), scheme, reader, method, threads)
            onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
        except (InputError, ExportError):
            raise
        except Exception as exc:  # the quantizer raises many types; one clear message
            raise ExportError(f"int8 quantization of {src.name} failed: {type(exc).__name__}: {exc}") from exc
    log.info("int8 (%s, %s): %s → %s", target, scheme.name, src.name, dst.name)
    return {"target": target, "family": family(model), "scheme": scheme.to_json(), "preprocess": mode,
            "calibration": {"method": method} if scheme.static else None, **decided}
