"""Upgrade a schema-1 bundle (older mmedge) to schema 2: record the sha256 of its tokenizer and torch reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge.bundle import MANIFEST, SCHEMA_VERSION, Bundle, FileRecord
from mmedge.bundle_checks import validate_schema
from mmedge.errors import BundleError
from mmedge.transaction import Transaction, referenced, remove_temps, writer_lock


@dataclass
class MigrationReport:
    """What `migrate_bundle` did: the schema versions, the artifacts it verified, the side files it hashed."""

    root: Path
    from_version: int
    to_version: int
    verified: list[str] = field(default_factory=list)  # artifact files whose recorded sha256 matched
    hashed: dict[str, FileRecord] = field(default_factory=dict)  # side files now recorded under "files"

    @property
    def migrated(self) -> bool:
        """True when bundle.json was rewritten (False: it was already current)."""
        return self.from_version != self.to_version

    def to_json(self) -> dict[str, Any]:
        """Machine-readable form (`mmedge migrate --json`)."""
        return {"bundle": str(self.root), "migrated": self.migrated, "from_schema": self.from_version,
                "to_schema": self.to_version, "verified": list(self.verified),
                "hashed": {rel: {"sha256": r.sha256, "bytes": r.bytes} for rel, r in self.hashed.items()}}


def migrate_bundle(root: str | Path) -> MigrationReport:
    """Check a schema-1 bundle's artifact hashes, record its side files' sha256 and commit it as schema 2."""
    root = Path(root)
    current = Bundle.load(root, verify=False, legacy=True)  # cheap: a current bundle needs no writer lock
    if current.schema_version >= SCHEMA_VERSION:
        return MigrationReport(root, current.schema_version, current.schema_version)
    with writer_lock(root):
        remove_temps(root)
        bundle = Bundle.load(root, legacy=True)  # re-read under the lock: validated, every path confined
        report = MigrationReport(root, bundle.schema_version, bundle.schema_version)
        if bundle.schema_version >= SCHEMA_VERSION:  # migrated by another process meanwhile
            return report
        try:
            bundle.verify()  # every recorded ONNX artifact against its sha256
        except BundleError as exc:
            raise BundleError(f"not migrated: {exc}") from None
        report.verified = [art.file for comp in bundle.components.values() for art in comp.artifacts.values()]
        txn = Transaction(bundle, referenced(bundle))
        for relative in bundle.side_files():  # the files export hashes, in its order
            full = bundle.path(relative)  # confined (symlinks resolved) before it is opened
            if not full.is_file():
                raise BundleError(f"not migrated: bundle file missing: {full} ({relative}); re-export the bundle")
            report.hashed[relative] = bundle.add_file(relative)
        bundle.files = bundle.files or {}
        bundle.schema_version = SCHEMA_VERSION
        validate_schema(bundle.to_json(), root / MANIFEST)
        txn.commit()  # atomic replace of bundle.json: the single commit point
    report.to_version = SCHEMA_VERSION
    return report
