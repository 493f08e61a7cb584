"""Audio generalization: an audio encoder (audio only) on voices it never heard, under recording conditions.

Each condition is the built-in spoken digits 'recorded' differently (mmedge.data.speech_conditions),
with the digits dataset's held-out-voice split: train/val on 15 voices, test on 5 unseen ones.
A model trained on one condition is tested on every condition's test split (the diagonal is
"train and test alike", the rest is "a microphone unseen in training"). Steps:

  data   (current code)  write DIR/<condition>.npz: waveforms, labels, sample rate per split
  train  (any code tree) train the preset's audio encoder per training condition, test on all;
                         --code PATH imports mmedge from PATH (e.g. a git worktree of the old code)
  mfcc                   the classic baseline on the same splits: MFCC (numpy) mean+std → RBF SVM
  table                  markdown table of result JSON files (one row per run and training condition)

Example (before/after; see docs/audio.md):
  python benchmarks/audio_generalization.py data --out /tmp/ag
  git worktree add /tmp/before HEAD
  python benchmarks/audio_generalization.py train --data /tmp/ag --code /tmp/before --label before --out b.json
  python benchmarks/audio_generalization.py train --data /tmp/ag --label after --out a.json
  python benchmarks/audio_generalization.py mfcc --data /tmp/ag --out m.json
  python benchmarks/audio_generalization.py table m.json b.json a.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")


def conditions() -> dict[str, Any]:
    """The recording conditions, by name (current code only)."""
    from mmedge.data.speech_conditions import SpeechCondition

    return {
        "builtin": SpeechCondition(snr_db=(-6.0, 3.0)),  # as the digits dataset: loud, very noisy
        "quiet_padded": SpeechCondition(peak_db=-30.0, snr_db=(30.0, 40.0), trim=True),  # recordings-like
        "band_3k": SpeechCondition(snr_db=(10.0, 20.0), lowpass_hz=3000.0),  # a band-limited microphone
        "wide_16k": SpeechCondition(snr_db=(10.0, 20.0), sample_rate=16000),  # 16 kHz files, noise up to 8 kHz
    }


def make_data(out: Path) -> None:
    """Write <condition>.npz with every split's waveforms (object arrays) and labels."""
    from mmedge.data.speech_conditions import load_digit_speech

    out.mkdir(parents=True, exist_ok=True)
    for name, cond in conditions().items():
        arrays: dict[str, Any] = {"sample_rate": np.array(cond.sample_rate), "condition": np.array(repr(cond))}
        for split in SPLITS:
            ds = load_digit_speech(split, cond)
            arrays[f"{split}_wave"] = np.stack([np.asarray(s.audio) for s in ds.samples])
            arrays[f"{split}_label"] = np.array([s.label for s in ds.samples], dtype=np.int64)
        np.savez(out / f"{name}.npz", **arrays)
        print(f"{name}: {cond}", file=sys.stderr)


def load_data(folder: Path) -> dict[str, dict[str, Any]]:
    """{condition: npz contents} of a `data` folder."""
    out = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as npz:
            out[path.stem] = {k: npz[k] for k in npz.files}
    if not out:
        raise SystemExit(f"no <condition>.npz in {folder}: run the `data` step first")
    return out


def dataset(data: dict[str, Any], split: str, name: str) -> Any:
    """An mmedge Dataset (audio only) of one split of one condition, in whichever code tree is imported."""
    from mmedge.data.sample import Dataset, Sample

    rate = int(data["sample_rate"])
    samples = [Sample(label=int(y), audio=w, sample_rate=rate, id=f"{name}-{split}-{i}")
               for i, (w, y) in enumerate(zip(data[f"{split}_wave"], data[f"{split}_label"], strict=True))]
    return Dataset(name=f"{name}-{split}", labels=[str(d) for d in range(10)], samples=samples)


def apply_overrides(cfg: Any, pairs: list[str]) -> None:
    """--set a.b.c=JSON on a RunConfig."""
    for pair in pairs:
        key, value = pair.split("=", 1)
        obj = cfg
        *path, last = key.split(".")
        for part in path:
            obj = getattr(obj, part)
        if not hasattr(obj, last):
            raise SystemExit(f"--set {key}: no such config field in this code tree")
        setattr(obj, last, json.loads(value))


def train_one(cfg: Any, data: dict[str, dict[str, Any]], train_cond: str) -> dict[str, Any]:
    """Train on `train_cond`, test on every condition; accuracies and timing."""
    import torch

    from mmedge.data.preprocess import Preprocessor
    from mmedge.models.classifier import MultimodalClassifier
    from mmedge.train.loop import History, evaluate, fit
    from mmedge.train.modes import build_plans
    from mmedge.train.run import preprocessing_spec
    from mmedge.train.tensors import tensorize

    torch.manual_seed(cfg.train.seed)
    pre = Preprocessor(["audio"], preprocessing_spec(cfg.model))
    train = tensorize(dataset(data[train_cond], "train", train_cond), pre)
    val = tensorize(dataset(data[train_cond], "val", train_cond), pre)
    model = MultimodalClassifier(cfg.model, 10, 0)
    started, history = time.perf_counter(), History()
    for plan in build_plans(model, cfg.train):
        fit(model, train, val, cfg.train, plan, 10, history=history)
    seconds = time.perf_counter() - started
    tests = {}
    for name, cond in data.items():
        figures = evaluate(model, tensorize(dataset(cond, "test", name), pre), 10)
        tests[name] = round(float(figures["all"]["accuracy"]), 4)
    return {"train": train_cond, "test": tests, "best_epoch": history.best_epoch,
            "epochs_run": len(history.epochs), "train_seconds": round(seconds, 1)}


def run_train(args: argparse.Namespace) -> None:
    """The `train` step: every training condition with one code tree and config."""
    code = Path(args.code).resolve() if args.code else None
    if code is not None and os.environ.get("MMEDGE_AG_CODE") != str(code):
        # run the step again in a child whose PYTHONPATH puts the other code tree first (its own mmedge)
        env = {**os.environ, "MMEDGE_AG_CODE": str(code),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))}
        raise SystemExit(subprocess.call([sys.executable, *sys.argv], env=env))
    import torch

    import mmedge
    from mmedge.models.presets import preset_config

    torch.set_num_threads(args.threads)
    data = load_data(Path(args.data))
    cfg = preset_config(args.preset)
    cfg.model.modalities = ["audio"]
    cfg.train.epochs, cfg.train.patience = args.epochs, args.patience
    apply_overrides(cfg, args.set or [])
    results = {"label": args.label, "code": str(Path(mmedge.__file__).parent.parent), "preset": args.preset,
               "epochs": args.epochs, "patience": args.patience, "set": args.set or [],
               "loadavg_start": os.getloadavg()[0], "runs": []}
    for cond in args.train_on or list(data):
        results["runs"].append(train_one(cfg, data, cond))
        print(json.dumps(results["runs"][-1]), file=sys.stderr, flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1))  # partial results survive a kill
    results["loadavg_end"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(results, indent=1))


# ---------------------------------------------------------------- the MFCC + SVM baseline


def mfcc(wave: np.ndarray, rate: int, n_mfcc: int = 13, n_mels: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """MFCC frames [T, n_mfcc] (25 ms Hann, 10 ms hop, HTK mel up to 4 kHz, DCT-II) and frame energy in dB."""
    from mmedge.models.audio_frontend import mel_filterbank

    n_fft, hop = round(0.025 * rate), round(0.010 * rate)
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, n=n_fft)) ** 2
    logmel = np.log(power @ mel_filterbank(rate, n_fft, n_mels, fmax=min(rate / 2, 4000.0)) + 1e-10)
    k = np.arange(n_mels)
    dct = np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(n_mfcc)[:, None])
    return logmel @ dct.T, 10 * np.log10(power.sum(axis=1) + 1e-20)


def mfcc_features(waves: np.ndarray, rate: int) -> np.ndarray:
    """Per clip: mean and std of the MFCCs over its frames within 40 dB of its loudest (silence dropped)."""
    rows = []
    for wave in waves:
        m, energy = mfcc(wave.astype(np.float64), rate)
        active = energy > energy.max() - 40.0
        m = m[active] if active.sum() >= 2 else m
        rows.append(np.concatenate([m.mean(axis=0), m.std(axis=0)]))
    return np.asarray(rows)


def run_mfcc(args: argparse.Namespace) -> None:
    """The `mfcc` step: standardized MFCC statistics → RBF SVM (C chosen on val), per training condition."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    data = load_data(Path(args.data))
    feats = {n: {s: mfcc_features(d[f"{s}_wave"], int(d["sample_rate"])) for s in SPLITS} for n, d in data.items()}
    runs = []
    for cond, d in data.items():
        best = max((float(make_pipeline(StandardScaler(), SVC(C=c)).fit(feats[cond]["train"], d["train_label"])
                          .score(feats[cond]["val"], d["val_label"])), c) for c in (1.0, 10.0, 100.0))
        clf = make_pipeline(StandardScaler(), SVC(C=best[1])).fit(feats[cond]["train"], d["train_label"])
        tests = {n: round(float(clf.score(feats[n]["test"], data[n]["test_label"])), 4) for n in data}
        runs.append({"train": cond, "test": tests, "C": best[1]})
    Path(args.out).write_text(json.dumps({"label": "MFCC + SVM", "runs": runs}, indent=1))


# ---------------------------------------------------------------- the table


def run_table(args: argparse.Namespace) -> None:
    """Markdown: one row per (result file, training condition), one column per test condition."""
    files = [json.loads(Path(p).read_text()) for p in args.results]
    tests = list(files[0]["runs"][0]["test"])
    print("| model | trained on | " + " | ".join(f"test: {t}" for t in tests) + " |")
    print("|---|---|" + "---|" * len(tests))
    for res in files:
        for run in res["runs"]:
            cells = [f"**{run['test'][t]:.3f}**" if t == run["train"] else f"{run['test'][t]:.3f}" for t in tests]
            print(f"| {res['label']} | {run['train']} | " + " | ".join(cells) + " |")
    print("\n| model | mean, tested as trained | mean, tested on the other conditions |\n|---|---:|---:|")
    for res in files:
        same = [r["test"][r["train"]] for r in res["runs"]]
        other = [v for r in res["runs"] for t, v in r["test"].items() if t != r["train"]]
        print(f"| {res['label']} | {np.mean(same):.3f} | {np.mean(other):.3f} |")


def main() -> None:
    """Parse the step and run it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    data = steps.add_parser("data")
    data.add_argument("--out", required=True)
    train = steps.add_parser("train")
    train.add_argument("--data", required=True)
    train.add_argument("--out", required=True)
    train.add_argument("--label", required=True)
    train.add_argument("--code", help="import mmedge from this tree (e.g. a git worktree of the old code)")
    train.add_argument("--preset", default="edge")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--patience", type=int, default=20)
    train.add_argument("--threads", type=int, default=1)
    train.add_argument("--train-on", nargs="*", help="training conditions (default: all)")
    train.add_argument("--set", nargs="*", help="config overrides a.b=JSON, e.g. train.augment.audio.enabled=false")
    mf = steps.add_parser("mfcc")
    mf.add_argument("--data", required=True)
    mf.add_argument("--out", required=True)
    table = steps.add_parser("table")
    table.add_argument("results", nargs="+")
    args = parser.parse_args()
    {"data": lambda: make_data(Path(args.out)), "train": lambda: run_train(args), "mfcc": lambda: run_mfcc(args),
     "table": lambda: run_table(args)}[args.step]()


if __name__ == "__main__":
    main()
