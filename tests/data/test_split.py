"""Split policies: group-disjoint automatic splits (deterministic per seed), row order, reports and warnings."""

from __future__ import annotations

import logging

import pytest

from mmedge.data.split import SplitReport, group_split, leaked_groups, row_order_split
from mmedge.errors import ManifestError


def speakers(n_groups: int, rows_each: int) -> list[str]:
    return [f"spk{g}" for g in range(n_groups) for _ in range(rows_each)]


@pytest.mark.parametrize(("n_groups", "rows_each"), [(3, 5), (8, 10), (40, 3)])
def test_group_split_is_disjoint_and_covers_every_row(n_groups: int, rows_each: int):
    groups = speakers(n_groups, rows_each)
    index = group_split(groups, seed=0)
    members = {s: {groups[i] for i in idx} for s, idx in index.items()}
    assert sorted(i for idx in index.values() for i in idx) == list(range(len(groups)))
    assert all(members[s] for s in ("train", "val", "test")), members
    assert not (members["train"] & members["val"]) and not (members["train"] & members["test"])
    assert not (members["val"] & members["test"])


def test_group_split_holds_about_a_tenth_each():
    index = group_split(speakers(40, 5), seed=1)
    assert [len(index[s]) for s in ("train", "val", "test")] == [160, 20, 20]


def test_group_split_is_deterministic_per_seed():
    groups = speakers(20, 4)
    assert group_split(groups, seed=3) == group_split(groups, seed=3)
    tests = {tuple(group_split(groups, seed=s)["test"]) for s in range(6)}
    assert len(tests) > 1, "the seed should change which groups are held out"


def test_group_split_needs_three_groups():
    with pytest.raises(ManifestError, match=r"m.jsonl: 2 distinct 'group' value\(s\).*need ≥ 3"):
        group_split(speakers(2, 10), seed=0, where="m.jsonl")


def test_row_order_split_is_the_historic_80_10_10():
    index = row_order_split(20)
    assert index["val"] == [8, 18] and index["test"] == [9, 19] and len(index["train"]) == 16


def test_leaked_groups_names_groups_in_two_splits():
    assert leaked_groups(["a", "a", "b", None], ["train", "test", "train", "val"]) == {"a": ["test", "train"]}


def test_report_warns_about_small_splits(caplog):
    report = SplitReport("m.jsonl", "policy", {"train": 200, "val": 29, "test": 40}, {"train": 9, "val": 3, "test": 1})
    with caplog.at_level(logging.WARNING, logger="mmedge.data.split"):
        report.check()
    assert len(report.warnings) == 2 and len(caplog.records) == 2
    assert "the val split has 29 rows (< 30)" in report.warnings[0]
    assert "the test split has 1 group(s) (< 2)" in report.warnings[1]
    assert report.lines() == ["splits: policy", "  train 200 rows, 9 groups; val 29 rows, 3 groups; "
                              "test 40 rows, 1 groups"]
    small_train = SplitReport("d", "p", {"train": 5, "val": 30, "test": 30}).check().warnings
    assert not any("(< 30)" in w for w in small_train)  # train is never "too few to measure"; only < 50 % warns
    assert len(small_train) == 1 and "train split holds 5 of 65 rows" in small_train[0]


@pytest.mark.parametrize("seed", range(6))
def test_uneven_groups_never_hand_a_huge_group_to_test(seed: int):
    """Groups [900, 50, 50]: test and val take a 50-row group each, whatever the shuffle; train keeps 900."""
    groups = ["big"] * 900 + ["a"] * 50 + ["b"] * 50
    index = group_split(groups, seed=seed)
    assert {s: len(index[s]) for s in index} == {"train": 900, "val": 50, "test": 50}


@pytest.mark.parametrize("seed", range(6))
def test_an_overshooting_group_is_passed_over_for_smaller_ones(seed: int):
    groups = ["big"] * 500 + [f"s{g}" for g in range(25) for _ in range(20)]  # 1000 rows: 100 each held out
    index = group_split(groups, seed=seed)
    assert len(index["test"]) == 100 and len(index["val"]) == 100 and len(index["train"]) == 800


def test_a_small_train_split_is_warned_about(caplog):
    report = SplitReport("m.jsonl", "p", {"train": 40, "val": 30, "test": 30})
    with caplog.at_level(logging.WARNING):
        report.check()
    assert any("train split holds 40 of 100 rows (< 50%)" in w for w in report.warnings)
    assert not SplitReport("m.jsonl", "p", {"train": 80, "val": 30, "test": 30}).check().warnings
