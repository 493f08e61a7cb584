"""Manifests with a `group` field: group-disjoint automatic splits, the policy report, leaks and bad groups."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mmedge.data.manifest import load_manifest, load_manifest_splits, resolve_dataset
from mmedge.data.split import POLICY_FIELD, POLICY_ROW_ORDER
from mmedge.errors import ManifestError


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def grouped(tmp_path: Path, n_groups: int = 12, rows_each: int = 10, **extra: object) -> Path:
    rows = [{"text": f"g{g} r{r}", "label": "ab"[r % 2], "group": f"speaker-{g}", "id": f"{g}-{r}", **extra}
            for g in range(n_groups) for r in range(rows_each)]
    return write_rows(tmp_path / "m.jsonl", rows)


def groups_of(ds) -> set[str]:
    return {s.id.split("-")[0] for s in ds.samples}


def test_group_field_gives_group_disjoint_splits(tmp_path: Path):
    path = grouped(tmp_path)
    splits, report = load_manifest_splits(path, split_seed=0)
    g = {name: groups_of(ds) for name, ds in splits.items()}
    assert not (g["train"] & g["val"]) and not (g["train"] & g["test"]) and not (g["val"] & g["test"])
    assert sum(len(ds) for ds in splits.values()) == 120
    assert report.policy.startswith("automatic group-disjoint") and "split seed 0" in report.policy
    assert report.rows == {name: len(ds) for name, ds in splits.items()}
    assert report.groups == {name: len(v) for name, v in g.items()}
    # the same rows through resolve_dataset (what export, quantize and eval use)
    assert [s.id for s in resolve_dataset(str(path), "test").samples] == [s.id for s in splits["test"].samples]


def test_group_split_changes_with_the_split_seed_only(tmp_path: Path):
    path = grouped(tmp_path)
    first = {s.id for s in load_manifest_splits(path, split_seed=0)[0]["test"].samples}
    again = {s.id for s in load_manifest_splits(path, split_seed=0)[0]["test"].samples}
    others = [{s.id for s in load_manifest_splits(path, split_seed=k)[0]["test"].samples} for k in range(1, 5)]
    assert first == again and any(o != first for o in others)


def test_small_splits_warn(tmp_path: Path, caplog):
    path = grouped(tmp_path, n_groups=5, rows_each=4)
    with caplog.at_level(logging.WARNING):
        _, report = load_manifest_splits(path)
    assert any("too few to measure" in w for w in report.warnings)
    assert any("1 group(s) (< 2)" in w for w in report.warnings)
    assert "too few to measure" in caplog.text


def test_without_group_the_row_order_policy_is_named(tmp_path: Path):
    path = write_rows(tmp_path / "m.jsonl", [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(40)])
    splits, report = load_manifest_splits(path)
    assert report.policy == POLICY_ROW_ORDER and report.groups is None
    assert [len(splits[s]) for s in ("train", "val", "test")] == [32, 4, 4]


def test_split_field_wins_and_leaked_groups_warn(tmp_path: Path, caplog):
    rows = [{"text": f"t{i}", "label": "ab"[i % 2], "group": f"g{i % 3}", "split": ["train", "val", "test"][i % 4 % 3]}
            for i in range(40)]
    path = write_rows(tmp_path / "m.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="mmedge.data.manifest"):
        splits, report = load_manifest_splits(path)
    assert report.policy == POLICY_FIELD
    assert [s.text for s in splits["val"].samples] == [r["text"] for r in rows if r["split"] == "val"]
    assert "appear in more than one split" in caplog.text


def test_limit_caps_rows_per_split(tmp_path: Path):
    _, report = load_manifest_splits(grouped(tmp_path), limit=3)
    assert report.rows == {"train": 3, "val": 3, "test": 3}


@pytest.mark.parametrize(("rows", "message"), [
    ([{"text": "a", "label": "x", "group": "g"}, {"text": "b", "label": "y"}] * 6, "has a 'group' field but this row"),
    ([{"text": "a", "label": "x", "group": [1]}] * 12, "field 'group' must be a string"),
    ([{"text": "a", "label": "x", "group": " "}] * 12, "this row's is empty"),
    ([{"text": "a", "label": "xy"[i % 2], "group": f"g{i % 2}"} for i in range(12)], "2 distinct 'group'"),
])  # fmt: skip
def test_bad_groups_name_the_problem(tmp_path: Path, rows: list[dict], message: str):
    path = write_rows(tmp_path / "m.jsonl", rows)
    with pytest.raises(ManifestError, match=message):
        load_manifest(path, split="train")


def test_int_groups_and_csv_groups(tmp_path: Path):
    rows = [{"text": f"t{i}", "label": "ab"[i % 2], "group": i % 6} for i in range(60)]
    path = write_rows(tmp_path / "m.jsonl", rows)
    assert load_manifest_splits(path)[1].groups is not None
    csv = tmp_path / "m.csv"
    csv.write_text("text,label,group\n" + "".join(f"t{i},{'ab'[i % 2]},s{i % 6}\n" for i in range(60)))
    _, report = load_manifest_splits(csv)
    assert sum(report.groups.values()) == 6 and sum(report.rows.values()) == 60
