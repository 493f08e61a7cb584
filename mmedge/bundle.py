"""The bundle manifest (bundle.json): the contract between export and every runtime."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge.errors import BundleError
from mmedge.io import sha256_file, write_json
from mmedge.specs import COMPONENTS, HEAD, MODALITIES, PRECISIONS, TensorSpec

SCHEMA_VERSION = 1
MANIFEST = "bundle.json"


@dataclass
class Artifact:
    """One file of a component at one precision, with its hash and measured parity."""

    file: str
    sha256: str
    bytes: int
    parity: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Serialize for bundle.json."""
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes,
                "parity": self.parity, "settings": self.settings}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        """Parse from bundle.json."""
        return cls(file=data["file"], sha256=data["sha256"], bytes=int(data["bytes"]),
                   parity=dict(data.get("parity", {})), settings=dict(data.get("settings", {})))


@dataclass
class Component:
    """A modality encoder or the fusion head: its I/O contract and artifacts per precision."""

    name: str
    kind: str  # "encoder" | "head"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Serialize for bundle.json."""
        return {
            "kind": self.kind,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "artifacts": {p: a.to_json() for p, a in self.artifacts.items()},
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Component:
        """Parse from bundle.json."""
        return cls(
            name=name,
            kind=data["kind"],
            inputs=[TensorSpec.from_json(s) for s in data["inputs"]],
            outputs=[TensorSpec.from_json(s) for s in data["outputs"]],
            artifacts={p: Artifact.from_json(a) for p, a in data.get("artifacts", {}).items()},
        )


@dataclass
class Bundle:
    """A bundle directory: ONNX files, optional engines, tokenizer, and bundle.json."""

    root: Path
    name: str
    labels: list[str]
    modalities: list[str]
    components: dict[str, Component]
    preprocessing: dict[str, dict[str, Any]]
    fusion: dict[str, Any] = field(default_factory=dict)
    engines: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

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
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "labels": self.labels,
            "modalities": self.modalities,
            "fusion": self.fusion,
            "components": {n: c.to_json() for n, c in self.components.items()},
            "preprocessing": self.preprocessing,
            "engines": self.engines,
            "provenance": self.provenance,
            "metrics": self.metrics,
        }

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
            return cls(
                root=root,
                name=str(data["name"]),
                labels=[str(x) for x in data["labels"]],
                modalities=[str(m) for m in data["modalities"]],
                components={n: Component.from_json(n, c) for n, c in data["components"].items()},
                preprocessing=dict(data["preprocessing"]),
                fusion=dict(data.get("fusion", {})),
                engines=dict(data.get("engines", {})),
                provenance=dict(data.get("provenance", {})),
                metrics=dict(data.get("metrics", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise BundleError(f"{root / MANIFEST} is malformed ({type(exc).__name__}: {exc}); "
                              "re-export the bundle") from exc

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
