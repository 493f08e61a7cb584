"""The bundle manifest (bundle.json): the contract between export and every runtime."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge.bundle_checks import confine, consistency_problem, manifest_paths, read_manifest, validate_schema
from mmedge.errors import BundleError, BundleNotFoundError, ConfigError
from mmedge.hash_records import checked_sha256
from mmedge.io import sha256_file, write_json
from mmedge.serialize import DICT_KEY, OMIT_NONE, SKIP, from_json, to_json
from mmedge.specs import Preprocessing, TensorSpec

SCHEMA_VERSION = 2  # 2: side files (tokenizer, torch reference) have a sha256 under "files"
READS = (1, 2)  # schema versions this mmedge parses; 1 only for `mmedge migrate`/`inspect` (load(legacy=True))
MANIFEST = "bundle.json"

# ---- layout: the one place that names the folders of a bundle and the exported batch range ----
TORCH_DIR = "torch"  # the fp32 PyTorch reference (weights + run.json) for the torch backend
TORCH_FILES = ("model.safetensors", "run.json")  # its files (mmedge.train.checkpoint CHECKPOINT, RUN_META)
ENGINE_DIR = "engines"  # TensorRT plans, their sidecars and build logs
MAX_BATCH = 64
BATCH_RANGE: tuple[int, int, int] = (1, 1, MAX_BATCH)  # (min, opt, max) of every exported "batch" axis


def batch_range() -> dict[str, tuple[int, int, int]]:
    """The `ranges` entry of a dynamic batch axis (a fresh dict each call)."""
    return {"batch": BATCH_RANGE}


def schema_1_error(root: Path) -> BundleError:
    """The one-line refusal of a schema-1 bundle (unhashed side files) with the migration command."""
    return BundleError(f"{root / MANIFEST} is schema 1 (written by an older mmedge): its tokenizer and torch "
                       f"reference are not hashed; run: mmedge migrate {root} (it records their sha256 after you "
                       "confirm the files are the ones you exported), or re-export")


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
class FileRecord:
    """A side file of the bundle (tokenizer, torch reference) with its hash and size."""

    sha256: str
    bytes: int


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
    files: dict[str, FileRecord] | None = field(default=None, metadata=OMIT_NONE)  # side files (schema 2)
    engines: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not isinstance(self.preprocessing, Preprocessing):  # a plain dict (older callers)
            self.preprocessing = Preprocessing.from_json(self.preprocessing)
        if self.files is None and self.schema_version >= 2:
            self.files = {}  # a schema-2 bundle always has the map (schema 1 keeps its document unchanged)
        self.verify_hashes = True  # Bundle.load(verify=False) turns hashing on use off (confinement stays)
        self.unhashed: list[str] = []  # side files a schema-1 bundle has no sha256 for (never read: migrate first)
        self._verified: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._file_locks: dict[str, threading.Lock] = {}
        self._manifest_id: tuple[int, int] | None = None  # (inode, mtime) of the bundle.json this was loaded from

    @classmethod
    def coerce(cls, bundle: Bundle | str | Path) -> Bundle:
        """A Bundle passes through; a path is loaded and verified (once, by the caller's command)."""
        return bundle if isinstance(bundle, Bundle) else cls.load(bundle)

    # ---- paths and lookups -------------------------------------------------------------
    def path(self, relative: str) -> Path:
        """Absolute path of a file inside the bundle (BundleError if `relative` leaves the bundle folder)."""
        return confine(self.root, relative, relative)

    def verified_path(self, relative: str, key: str = "") -> Path:
        """Path of a file the caller is about to read: confined, present, sha256 checked once per Bundle."""
        with self._lock:
            done = self._verified.get(relative)
            file_lock = self._file_locks.setdefault(relative, threading.Lock())
        if done is not None:
            return done
        with file_lock:  # one hash per file, while other files hash on other threads (parallel loading)
            return self._verify_file(relative, key)

    def _verify_file(self, relative: str, key: str) -> Path:
        with self._lock:  # the state the hash is checked against; a relocate/adopt meanwhile re-checks
            done = self._verified.get(relative)
            root, expected = self.root, self.recorded_sha256(relative)
        if done is not None:
            return done
        full = confine(root, relative, key or relative)
        if not full.is_file():
            fix = self._fix("re-run mmedge export")
            raise BundleError(f"bundle file missing: {full} ({key or relative}); {fix}")
        if self.verify_hashes and expected is None and self.schema_version < 2:
            raise schema_1_error(self.root)
        if self.verify_hashes and expected is None:
            raise BundleError(f"bundle.json records no sha256 for {relative}, so it cannot be trusted; "
                              f"re-export the bundle (mmedge export RUN --out {self.root})")
        if self.verify_hashes and expected is not None:
            actual = checked_sha256(full)
            if actual != expected:
                raise BundleError(f"bundle file altered: {full} has sha256 {actual[:12]}…, bundle.json expects "
                                  f"{expected[:12]}…; {self._fix('re-run mmedge export (or quantize)')}")
        with self._lock:
            changed = self.root != root or self.recorded_sha256(relative) != expected
            if not changed:
                return self._verified.setdefault(relative, full)
        return self._verify_file(relative, key)  # relocated or adopted a newer bundle.json meanwhile

    def _fix(self, default: str) -> str:
        """The advice for a missing/altered file: reload when another writer replaced bundle.json since load."""
        try:
            st = (self.root / MANIFEST).stat()
        except OSError:
            return default
        if self._manifest_id is not None and (st.st_ino, st.st_mtime_ns) != self._manifest_id:
            return "bundle.json was rewritten by another mmedge process after this Bundle was loaded: load it again"
        return default

    def inherit_verified(self, other: Bundle) -> None:
        """Reuse `other`'s hash checks for files both record with the same sha256 (a re-read under a writer lock)."""
        if other.root.resolve() != self.root.resolve():
            return
        with other._lock:
            done = dict(other._verified)
        with self._lock:
            for relative, full in done.items():
                if other.recorded_sha256(relative) == self.recorded_sha256(relative):
                    self._verified.setdefault(relative, full)

    def adopt(self, other: Bundle) -> None:
        """Take over the state of `other`, a newer copy of this bundle (after a committed update)."""
        with other._lock:
            state = dict(vars(other))
        state["_lock"] = self._lock
        state["_file_locks"] = self._file_locks  # a file's lock stays the one threads may be holding
        with self._lock:
            vars(self).update(state)

    def relocate(self, root: Path) -> None:
        """Point this Bundle at the folder its files were moved to (a whole-folder swap)."""
        old, self.root = self.root, Path(root)
        with self._lock:
            self._verified = {rel: self.root / full.relative_to(old) for rel, full in self._verified.items()}

    def recorded_sha256(self, relative: str) -> str | None:
        """The sha256 bundle.json records for a file (an artifact or a side file), or None."""
        for comp in self.components.values():
            for art in comp.artifacts.values():
                if art.file == relative:
                    return art.sha256
        record = (self.files or {}).get(relative)
        return record.sha256 if record is not None else None

    def side_files(self) -> list[str]:
        """The side files a runtime reads, in export's order: the torch reference (when present), the tokenizer."""
        files = [f"{TORCH_DIR}/{name}" for name in TORCH_FILES] if (self.root / TORCH_DIR).is_dir() else []
        return files + ([self.preprocessing.text.tokenizer] if self.preprocessing.text is not None else [])

    def verify_preprocessing(self) -> None:
        """Verify the files preprocessing reads (the tokenizer) before a Preprocessor opens them."""
        if self.preprocessing.text is not None:
            self.verified_path(self.preprocessing.text.tokenizer, "preprocessing.text.tokenizer")

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
        """Path of a component's artifact at a precision, verified (confined, sha256) on first use."""
        art = self.artifact(component, precision)
        return self.verified_path(art.file, f"components.{component}.artifacts.{precision}.file")

    @property
    def split_seed(self) -> int:
        """The training run's split_seed (a manifest's group split), so val/test here are the run's own rows."""
        return int(self.provenance.get("split_seed", 0))  # bundles exported before it was recorded: the default

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
        with self._lock:
            self._verified[file] = full  # hashed just now
        return art

    def add_file(self, relative: str) -> FileRecord:
        """Record a side file written into the bundle (tokenizer, torch reference): hash and size measured now."""
        full = self.path(relative)
        record = FileRecord(sha256=sha256_file(full), bytes=full.stat().st_size)
        self.files = {**(self.files or {}), relative: record}
        return record

    @classmethod
    def load(cls, root: str | Path, verify: bool = True, *, legacy: bool = False) -> Bundle:
        """Read, validate, confine and cross-check bundle.json (schema 1 only if `legacy`); files hashed on use."""
        root = Path(root)
        manifest = root / MANIFEST
        if not root.is_dir():
            raise BundleNotFoundError(f"bundle folder not found: {root} "
                                      f"(create one with: mmedge export RUN --out {root})")
        if not manifest.is_file():
            raise BundleNotFoundError(f"{root} is not a bundle: {MANIFEST} is missing (re-run mmedge export)")
        st = manifest.stat()
        bundle = cls._from_json(root, read_manifest(manifest))
        if bundle.schema_version < 2 and not legacy:
            raise schema_1_error(root)
        bundle._manifest_id = (st.st_ino, st.st_mtime_ns)
        bundle.verify_hashes = verify
        if verify:
            bundle.check_present()
        if bundle.schema_version < 2:
            bundle.unhashed = [f for f in bundle.side_files() if bundle.recorded_sha256(f) is None]
        return bundle

    @classmethod
    def _from_json(cls, root: Path, data: Any) -> Bundle:
        manifest = root / MANIFEST
        if not isinstance(data, dict):
            raise BundleError(f"{manifest}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version not in READS or isinstance(version, bool):
            raise BundleError(f"{manifest}: schema_version is {version!r}, this mmedge reads "
                              f"{', '.join(map(str, READS))}; re-export the bundle with this version of mmedge")
        validate_schema(data, manifest)
        for key, value in manifest_paths(data):  # before any file is opened
            confine(root, value, key)
        try:
            bundle = from_json(cls, data, error=BundleError, given={"root": root})
        except (BundleError, ConfigError) as exc:
            raise BundleError(f"{manifest} is malformed: {exc}; re-export the bundle") from exc
        problem = consistency_problem(bundle.labels, bundle.modalities, bundle.components, bundle.preprocessing)
        if problem is None and version >= 2 and bundle.preprocessing.text is not None:
            tok = bundle.preprocessing.text.tokenizer
            if tok not in (bundle.files or {}):
                problem = f"preprocessing.text.tokenizer {tok!r} has no sha256 under files"
        if problem is not None:
            raise BundleError(f"{manifest}: {problem}; re-export the bundle")
        return bundle

    def check_present(self) -> None:
        """Every artifact file named in bundle.json exists (cheap: no hashing)."""
        for name, comp in self.components.items():
            for precision, art in comp.artifacts.items():
                full = self.path(art.file)
                if not full.is_file():
                    raise BundleError(f"bundle file missing: {full} ({name} {precision}); re-run mmedge export")

    def verify(self) -> None:
        """Hash every file bundle.json records now (each at most once per Bundle), e.g. for `mmedge inspect`."""
        for name, comp in self.components.items():
            for precision in comp.artifacts:
                self.artifact_path(name, precision)
        for relative in self.files or {}:
            self.verified_path(relative, f"files.{relative}")
