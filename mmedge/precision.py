"""Precision as one value: parse it, validate it against a bundle, and name the artifact each backend runs.

A precision is what a user writes: one name for every component (`fp16`), a per-component map
(`image=int8,text=fp16`; unlisted components stay fp32) or `auto` (the map `mmedge quantize --auto`
stored in the bundle). An *artifact key* is what bundle.json stores per component: `fp32`, `fp16`,
`int8` (the ONNX Runtime CPU flavour) or `int8-trt` (symmetric QDQ for TensorRT). Which int8
flavour a backend runs is declared by the backend itself (`Backend.int8_artifact`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from mmedge.errors import BundleError, InputError
from mmedge.specs import HEAD

if TYPE_CHECKING:
    from mmedge.bundle import Bundle

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")  # what users choose
TRT_INT8 = "int8-trt"  # the QDQ flavour made for TensorRT (mmedge quantize --precision int8 --target tensorrt)
ARTIFACT_KEYS: tuple[str, ...] = (*PRECISIONS, TRT_INT8)  # what bundle.json stores
AUTO = "auto"


def check_name(name: str, where: str = "") -> str:
    """`name` if it is a precision or artifact key, else an InputError listing the choices."""
    if name not in ARTIFACT_KEYS:
        place = f" for {where}" if where else ""
        raise InputError(f"unknown precision '{name}'{place} (choose from: {', '.join(ARTIFACT_KEYS)}, {AUTO})")
    return name


def quantize_command(bundle_root: object, key: str) -> str:
    """The `mmedge quantize` command that creates artifact `key`."""
    target = " --target tensorrt" if key == TRT_INT8 else ""
    base = "int8" if key == TRT_INT8 else key
    return f"mmedge quantize {bundle_root} --precision {base}{target}"


@dataclass(frozen=True)
class Precision:
    """One precision choice: a single name, a per-component map, or `auto`."""

    name: str | None = None  # every component (None with a map)
    per_component: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: PrecisionLike) -> Precision:
        """'fp16', 'auto', 'image=int8,text=fp16', a {component: name} map or a Precision."""
        if isinstance(value, Precision):
            return value
        if isinstance(value, Mapping):
            return cls(None, tuple((str(k), check_name(str(v), str(k))) for k, v in value.items()))
        text = str(value).strip()
        if "=" not in text:
            return cls(text if text == AUTO else check_name(text))
        pairs = [item.split("=", 1) for item in (i.strip() for i in text.split(",")) if item]
        if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
            raise InputError(f"cannot read precision '{text}': write component=precision pairs, "
                             "e.g. image=int8,text=int8,audio=fp16,fusion_head=fp32")
        return cls.parse({k.strip(): v.strip() for k, v in pairs})

    @property
    def is_auto(self) -> bool:
        """True for `auto` (resolved from the bundle's stored choice)."""
        return self.name == AUTO

    @property
    def label(self) -> str:
        """Display name: 'int8' or 'text=int8,image=fp16'."""
        return self.name if self.name is not None else ",".join(f"{k}={v}" for k, v in self.per_component)

    def to_json(self) -> str | dict[str, str]:
        """A name, or the {component: name} map."""
        return self.name if self.name is not None else dict(self.per_component)

    def explicit(self, bundle: Bundle) -> Precision:
        """`auto` replaced by the per-component map stored in the bundle; anything else as is."""
        return Precision.parse(self.choice(bundle)) if self.is_auto else self

    def choice(self, bundle: Bundle) -> dict[str, str]:
        """The user-level name per component of `bundle` (no backend mapping, no artifact check)."""
        components = [*bundle.modalities, HEAD]
        if self.is_auto:
            auto = bundle.provenance.get("auto_precision", {}).get("choice")
            if not auto:
                raise InputError(f"bundle {bundle.root} has no automatic precision choice; "
                                 f"run: mmedge quantize {bundle.root} --auto")
            return {c: check_name(str(auto.get(c, "fp32")), c) for c in components}
        if self.name is not None:
            return dict.fromkeys(components, self.name)
        chosen = dict(self.per_component)
        unknown = sorted(set(chosen) - set(components))
        if unknown:
            raise InputError(f"precision given for unknown component(s) {unknown} (bundle has {components})")
        return {c: chosen.get(c, "fp32") for c in components}

    def resolve(self, bundle: Bundle, backend: str = "onnxruntime") -> dict[str, str]:
        """Artifact key per component for `backend`; BundleError naming the quantize command if one is missing."""
        keys = {c: artifact_key(p, backend) for c, p in self.choice(bundle).items()}
        for component, key in keys.items():
            if key not in bundle.components[component].artifacts:
                have = ", ".join(bundle.components[component].artifacts) or "none"
                raise BundleError(f"bundle {bundle.root} has no {key} artifact for '{component}' (it has: {have}); "
                                  f"create it with: {quantize_command(bundle.root, key)}")
        return keys

    def __str__(self) -> str:
        return self.label


PrecisionLike: TypeAlias = "str | Mapping[str, str] | Precision"


def artifact_key(precision: str, backend: str = "onnxruntime") -> str:
    """The artifact `backend` runs for a user precision: `int8` is the backend's int8 flavour."""
    check_name(precision)
    if precision != "int8":
        return precision
    from mmedge.runtime.backends import backend_info

    return backend_info(backend).int8_artifact


def parse_list(value: str) -> list[Precision]:
    """'fp32,fp16,int8' → three; 'image=int8,text=fp16' → one map; ';' separates map entries."""
    out: list[Precision] = []
    for entry in (e.strip() for e in value.split(";")):
        if not entry:
            continue
        if "=" in entry:
            out.append(Precision.parse(entry))
        else:
            out.extend(Precision.parse(item.strip()) for item in entry.split(",") if item.strip())
    if not out:
        raise InputError("no precision given (e.g. fp32,fp16,int8 or image=int8,text=fp16)")
    return out
