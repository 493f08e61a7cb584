"""Split policies for manifests: the `split` field, group-disjoint automatic splits, or row order.

A `group` (speaker, session, device, patient…) must never sit on both sides of a train/test line:
rows of one group share what the model could memorize, so a test split drawn from the training
groups measures recall, not generalization. Reports say which policy made the splits and how many
rows and groups each holds, with a warning when a split is too small to measure anything.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmedge.errors import ManifestError

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
HELDOUT_FRACTION = 0.1  # automatic val and test each take ~10 % of the rows
MIN_ROWS = 30  # below this a split's accuracy moves by > 3 points per row: too small to measure
MIN_GROUPS = 2
MIN_TRAIN_SHARE = 0.5  # a train split below half the rows is worth a warning

POLICY_FIELD = "split field"
POLICY_ROW_ORDER = "automatic 80/10/10 by row order (rows i % 10 == 8 → val, == 9 → test)"


def policy_groups(seed: int) -> str:
    """The name of the group-disjoint automatic policy for `seed`."""
    return f"automatic group-disjoint ~80/10/10 by 'group' (split seed {seed})"


def row_order_split(n: int) -> dict[str, list[int]]:
    """Row indices per split: a fixed 80/10/10 by row order (i % 10 == 8 → val, == 9 → test)."""
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i in range(n):
        out["val" if i % 10 == 8 else "test" if i % 10 == 9 else "train"].append(i)
    return out


def group_split(groups: Sequence[str], seed: int, where: str = "manifest") -> dict[str, list[int]]:
    """Row indices per split with no group in two splits; deterministic from `seed`.

    Groups are shuffled by the seed; test then val take whole groups, in that order, while a group
    brings them closer to ~10 % of the rows: a group that would overshoot is passed over (a smaller one
    may follow), and one taken alone must be the smallest left. Each gets at least one group; the rest
    is train (at least one group). Very uneven groups can still leave train small: SplitReport warns.
    """
    counts = Counter(groups)
    if len(counts) < 3:
        raise ManifestError(f"{where}: {len(counts)} distinct 'group' value(s) cannot make group-disjoint "
                            "train/val/test splits (need ≥ 3); add more groups or a 'split' field to each row")
    names = sorted(counts)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    target = HELDOUT_FRACTION * len(groups)
    owner: dict[str, str] = {}
    for split, keep in (("test", 2), ("val", 1)):  # keep: groups left for the splits after this one
        rows = 0
        while len(order) > keep and rows < target:
            closer = [g for g in order if abs(rows + counts[g] - target) < target - rows]
            if not closer and rows:
                break
            pick = closer[0] if closer else min(order, key=lambda g: counts[g])  # never empty: the smallest
            owner[pick] = split
            rows += counts[pick]
            order.remove(pick)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for row, group in enumerate(groups):
        out[owner.get(group, "train")].append(row)
    return out


def leaked_groups(groups: Sequence[str | None], assignment: Sequence[str]) -> dict[str, list[str]]:
    """Groups found in more than one split (group → its splits), for manifests with both fields."""
    seen: dict[str, set[str]] = {}
    for group, split in zip(groups, assignment, strict=True):
        if group is not None:
            seen.setdefault(group, set()).add(split)
    return {g: sorted(s) for g, s in seen.items() if len(s) > 1}


@dataclass
class SplitReport:
    """Which policy made the splits, and rows (and groups, when known) per split."""

    source: str
    policy: str
    rows: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def check(self) -> SplitReport:
        """Add (and log) a warning for every split too small to measure, or a train split < half; return self."""
        total = sum(self.rows.values())
        if total and self.rows.get("train", 0) < MIN_TRAIN_SHARE * total:
            self.warn(f"{self.source}: the train split holds {self.rows.get('train', 0)} of {total} rows "
                      f"(< {MIN_TRAIN_SHARE:.0%}): most data is held out (very uneven groups?); consider a "
                      "'split' field")
        for split, n in self.rows.items():
            if split == "train":
                continue
            if n < MIN_ROWS:
                self.warn(f"{self.source}: the {split} split has {n} rows (< {MIN_ROWS}): too few to measure; "
                          "its figures move by several points per row")
            if self.groups is not None and self.groups.get(split, 0) < MIN_GROUPS:
                self.warn(f"{self.source}: the {split} split has {self.groups.get(split, 0)} group(s) "
                          f"(< {MIN_GROUPS}): its figures speak for that group only")
        return self

    def warn(self, message: str) -> None:
        """Record and log one warning."""
        self.warnings.append(message)
        log.warning("%s", message)

    def lines(self) -> list[str]:
        """Human-readable summary: the policy, then rows (groups) per split."""
        parts = []
        for split, n in self.rows.items():
            groups = f", {self.groups[split]} groups" if self.groups is not None and split in self.groups else ""
            parts.append(f"{split} {n} rows{groups}")
        return [f"splits: {self.policy}", "  " + "; ".join(parts)]

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (stored in metrics.json, printed by --json)."""
        return {"source": self.source, "policy": self.policy, "rows": self.rows, "groups": self.groups,
                "warnings": self.warnings}
