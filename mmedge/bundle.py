"""The bundle manifest (bundle.json): the contract between export and every runtime."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge.errors import BundleError, ConfigError
from mmedge.io import sha256_file, write_json
from mmedge.serialize import DICT_KEY, SKIP, from_json, to_json
from mmedge.specs import COMPONENTS, HEAD, MODALITIES, PRECISIONS, Preprocessing, TensorSpec

SCHEMA_VERSION = 1
MANIFEST = "bundle.json"

# ---- layout: the one place that names the folders of a bundle and the exported batch range ----
TORCH_DIR = "torch"  # the fp32 PyTorch reference (weights + run.json) for the torch backend
ENGINE_DIR = "engines"  # TensorRT plans, their sidecars and build logs
MAX_BATCH = 64
BATCH_RANGE: tuple[int, int, int] = (1, 1, MAX_BATCH)  # (min, opt, max) of every exported "batch" axis


def batch_range() -> dict[str, tuple[int, int, int]]:
    """The `ranges` entry of a dynamic batch axis (a fresh dict each call)."""
    return {"batch": BATCH_RANGE}


@dataclass
class Artifact:
    """One file of a component at one precision, with its hash and measured parity."""

    file: str
    sha256: str
    bytes: int
    parity: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Serialize for bundle.json."""
        return to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        """Parse from bundle.json."""
        return from_json(cls, data, error=BundleError)


@dataclass
class Component:
    """A modality encoder or the fusion head: its I/O contract and artifacts per precision."""

    name: str = field(metadata=DICT_KEY)  # the key under bundle.json "components"
    kind: str  # "encoder" | "head"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Serialize for bundle.json."""
        return to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Component:
        """Parse from bundle.json."""
        return from_json(cls, data, where=f"components.{name}", error=BundleError, given={"name": name})


@dataclass(kw_only=True)
class Bundle:
    """A bundle directory: ONNX files, optional engines, tokenizer, and bundle.json."""

    root: Path = field(metadata=SKIP)
    schema_version: int = SCHEMA_VERSION
    name: str
    labels: list[str]
    modalities: list[str]
    fusion: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Component]
    preprocessing: Preprocessing
    engines: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not isinstance(self.preprocessing, Preprocessing):  # a plain dict (older callers)
            self.preprocessing = Preprocessing.from_json(self.preprocessing)

    @classmethod
    def coerce(cls, bundle: Bundle | str | Path) -> Bundle:
        """A Bundle passes through; a path is loaded and verified (once, by the caller's command)."""
        return bundle if isinstance(bundle, Bundle) else cls.load(bundle)

    # ---- paths and lookups -------------------------------------------------------------
    def path(self, relative: str) -> Path:
        """Absolute path of a file inside the bundle."""
        return self.root / relative

    def artifact(self, component: str, precision: str) -> Artifact:
        """The artifact of `component` at `precision`, or a BundleError naming the fix."""
        comp = self.components.get(component)
        if comp is None:
            raise BundleError(f"bundle {self.root} has no component '{component}' "
                              f"(it has: {', '.join(self.components)})")
        art = comp.artifacts.get(precision)
        if art is None:
            have = ", ".join(comp.artifacts) or "none"
            raise BundleError(
                f"bundle {self.root} has no {precision} artifact for '{component}' (it has: {have}); "
                f"create it with: mmedge quantize {self.root} --precision {precision}")
        return art

    def artifact_path(self, component: str, precision: str) -> Path:
        """Absolute path of a component's artifact at a precision."""
        return self.path(self.artifact(component, precision).file)

    @property
    def requires_all_modalities(self) -> bool:
        """True when the fusion op cannot handle a missing modality (e.g. product fusion)."""
        return bool(self.fusion.get("requires_all", False))

    # ---- (de)serialization -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The bundle.json document."""
        return to_json(self)  # type: ignore[no-any-return]

    def save(self) -> Path:
        """Write bundle.json atomically and return its path."""
        target = self.root / MANIFEST
        write_json(target, self.to_json())
        return target

    def add_artifact(self, component: str, precision: str, file: str,
                     parity: dict[str, float] | None = None, settings: dict[str, Any] | None = None) -> Artifact:
        """Register a file written into the bundle (hash and size measured now)."""
        full = self.path(file)
        art = Artifact(file=file, sha256=sha256_file(full), bytes=full.stat().st_size,
                       parity=parity or {}, settings=settings or {})
        self.components[component].artifacts[precision] = art
        return art

    @classmethod
    def load(cls, root: str | Path, verify: bool = True) -> Bundle:
        """Read and validate bundle.json; with `verify`, check every artifact's sha256."""
        root = Path(root)
        manifest = root / MANIFEST
        if not root.is_dir():
            raise BundleError(f"bundle folder not found: {root} (create one with: mmedge export RUN --out {root})")
        if not manifest.is_file():
            raise BundleError(f"{root} is not a bundle: {MANIFEST} is missing (re-run mmedge export)")
        try:
            data = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"{manifest} is not valid JSON: {exc}") from exc
        bundle = cls._from_json(root, data)
        if verify:
            bundle.verify()
        return bundle

    @classmethod
    def _from_json(cls, root: Path, data: Any) -> Bundle:
        if not isinstance(data, dict):
            raise BundleError(f"{root / MANIFEST}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(f"{root / MANIFEST}: schema_version is {version!r}, this mmedge reads "
                              f"{SCHEMA_VERSION}; re-export the bundle with this version of mmedge")
        try:
            return from_json(cls, data, error=BundleError, given={"root": root})
        except (BundleError, ConfigError) as exc:
            raise BundleError(f"{root / MANIFEST} is malformed: {exc}; re-export the bundle") from exc

    def verify(self) -> None:
        """Check structure and that every artifact exists with its recorded sha256."""
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise BundleError(f"{self.root / MANIFEST}: unknown components {sorted(unknown)}")
        if HEAD not in self.components:
            raise BundleError(f"{self.root / MANIFEST}: the '{HEAD}' component is missing")
        for m in self.modalities:
            if m not in MODALITIES or m not in self.components:
                raise BundleError(f"{self.root / MANIFEST}: modality '{m}' has no encoder component")
        for name, comp in self.components.items():
            for precision, art in comp.artifacts.items():
                self._verify_artifact(name, precision, art)

    def _verify_artifact(self, name: str, precision: str, art: Artifact) -> None:
        if precision not in PRECISIONS and not precision.startswith("int8"):
            raise BundleError(f"{self.root / MANIFEST}: '{name}' has unknown precision '{precision}'")
        full = self.path(art.file)
        if not full.is_file():
            raise BundleError(f"bundle file missing: {full} ({name} {precision}); re-run mmedge export")
        actual = sha256_file(full)
        if actual != art.sha256:
            raise BundleError(f"bundle file altered: {full} has sha256 {actual[:12]}…, bundle.json "
                              f"expects {art.sha256[:12]}…; re-run mmedge export (or quantize)")
