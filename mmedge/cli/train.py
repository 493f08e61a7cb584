"""`mmedge train`: fine-tune a multimodal classifier and write a run directory."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mmedge.cli.choices import FusionName, Monitor, PresetName, TrainDevice, TrainMode
from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json


def register(app: typer.Typer) -> None:
    """Add the `train` command."""
    app.command("train")(train)


def split_list(value: str | None) -> list[str] | None:
    """'a,b' → ['a', 'b'] (None stays None)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@handle_errors
def train(
    data: str | None = typer.Option(None, help="'digits' (built-in, the default) or a JSONL/CSV manifest "
                                    "(optional fields split, group; stored as an absolute path)."),
    out: Path = typer.Option(Path("runs/run"), "--out", "-o", help="Run directory to write."),
    preset: PresetName | None = typer.Option(None, help="Starting configuration: tiny | edge (default: the config's "
                                      "model.preset, else tiny)."),
    config: Path | None = typer.Option(None, help="YAML/TOML/JSON config: overrides only the settings it names, "
                                       "on top of the preset; flags override both."),
    mode: TrainMode | None = typer.Option(None, help="Fine-tuning mode (default: the preset's)."),
    modalities: str | None = typer.Option(None, help="Comma list, e.g. text,image,audio."),
    fusion: FusionName | None = typer.Option(None, help="How the modality embeddings are fused."),
    epochs: int | None = typer.Option(None, min=1, help="Training epochs (default: the preset's)."),
    seed: int | None = typer.Option(None, help="Random seed (default: the preset's)."),
    threads: int | None = typer.Option(None, min=1, help="torch threads (presets use 1)."),
    device: TrainDevice | None = typer.Option(None, help="Where to train: auto (CUDA when torch sees a GPU, "
                                              "else the CPU; the default), cpu or cuda (an error without a GPU)."),
    limit: int | None = typer.Option(None, min=1, help="Cap on samples per split (quick runs)."),
    encoder_lr_mult: float | None = typer.Option(None, help="Pretrained encoders' lr multiplier (full, lp-ft)."),
    partial_blocks: int | None = typer.Option(None, min=1, help="Blocks unfrozen by --mode partial."),
    lora_rank: int | None = typer.Option(None, min=1, help="LoRA rank for --mode lora."),
    lp_epochs: int | None = typer.Option(None, min=1, help="Linear-probe epochs for --mode lp-ft."),
    monitor: Monitor | None = typer.Option(None, help="Picks the best epoch and drives early stopping: val_loss "
                                       "(default) | val_macro_f1 | val_accuracy."),
    patience: int | None = typer.Option(None, min=1, help="Epochs without an improvement > --min-delta before a "
                                        "phase stops (preset: 10)."),
    min_delta: float | None = typer.Option(None, min=0.0, help="Smallest change of the monitor that counts as an "
                                           "improvement (preset: 0)."),
    clip_seconds: float | None = typer.Option(None, min=0.01, help="Audio clip length in seconds (longer clips "
                                              "are cut, shorter ones padded)."),
    split_seed: int | None = typer.Option(None, help="Seed of a manifest's automatic group-disjoint split."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint "
                                "(config: --config, else OUT/config.yaml, plus the same flags)."),
    text_encoder: str | None = typer.Option(None, help="bag | minilm | hf:PATH (a local BERT-family folder)."),
    image_encoder: str | None = typer.Option(
        None, help="cnn | efficientnet_lite0 | hf:PATH (a local ViT/ConvNeXt folder)."),
    audio_encoder: str | None = typer.Option(
        None, help="cnn | mobile_cnn | hf:PATH (a local wav2vec2/HuBERT or Whisper folder)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train on the built-in dataset or your manifest; writes config, checkpoints (best, last) and metrics."""
    from mmedge.train.distributed import is_main_process
    from mmedge.train.layering import resolve_config

    flags: dict[str, Any] = {
        "data": data, "limit": limit, "split_seed": split_seed,
        "train.mode": mode, "train.epochs": epochs, "train.seed": seed, "train.threads": threads,
        "train.device": device,
        "train.encoder_lr_mult": encoder_lr_mult, "train.partial_blocks": partial_blocks,
        "train.lora_rank": lora_rank, "train.lp_epochs": lp_epochs, "train.monitor": monitor,
        "train.patience": patience, "train.min_delta": min_delta, "model.modalities": split_list(modalities),
        "model.fusion": fusion, "model.audio.clip_seconds": clip_seconds,
        "model.text.encoder": text_encoder, "model.image.encoder": image_encoder,
        "model.audio.encoder": audio_encoder,
    }
    if resume and config is None and (out / "config.yaml").is_file():
        config = out / "config.yaml"  # the run's own resolved config: `--out RUN --resume` is enough
    resolved = resolve_config(preset, config, flags)
    if not any("name" in keys for _, keys in resolved.layers):  # a config file's own name wins over --out's
        resolved = resolve_config(preset, config, {**flags, "name": out.name})
    main = is_main_process()
    named = data is not None or any("data" in keys for _, keys in resolved.layers)
    result = run_with_progress(resolved, out, quiet=as_json or not main, resume=resume, builtin_data=not named)
    if not result.is_main:
        return
    if as_json:
        print_json({"out": str(result.out_dir), "config": resolved.to_json(), **result.metrics})
        return
    console.print(subset_table(result.metrics["test"], f"test split — {out}"))
    for reason in result.metrics["stop_reasons"]:
        console.print(f"phase {reason}", highlight=False)
    console.print(f"trained in {result.seconds:.1f}s (best epoch {result.history.best_epoch} by "
                  f"{result.history.monitor}); checkpoints in {out}/checkpoints; "
                  f"next: mmedge export {out} --out export/{out.name}", highlight=False)


def print_config(resolved: Any) -> None:
    """The resolved config as YAML, after the layers that made it."""
    import yaml

    console.print("config layers: " + "; ".join(resolved.describe()), highlight=False)
    console.print(yaml.safe_dump(resolved.config.to_dict(), sort_keys=False).rstrip(), highlight=False,
                  markup=False)


def print_splits(report: Any) -> None:
    """Which split policy was used, rows (groups) per split."""
    for line in report.lines():
        console.print(line, highlight=False, markup=False)


def run_with_progress(resolved: Any, out: Path, quiet: bool = False, resume: bool = False,
                      builtin_data: bool = False) -> Any:
    """train_run with a progress bar (ETA, stderr) over epochs (and the split policy printed before training)."""
    from mmedge.progress import NullTask, task
    from mmedge.train.run import train_run

    cfg = resolved.config

    def before_training(report: Any) -> None:  # the config as trained: data and hf: folders resolved by now
        print_config(resolved)
        print_splits(report)

    with contextlib.nullcontext(NullTask()) if quiet else task(cfg.name, total=cfg.train.epochs) as bar:

        def progress(epoch: int, epochs: int, fig: dict[str, float]) -> None:
            bar.update(completed=epoch, total=epochs,
                       description=f"{cfg.name} epoch {epoch} loss {fig['loss']:.3f} val loss "
                                   f"{fig['val_loss']:.3f} acc {fig['val_accuracy']:.3f}")

        return train_run(cfg, out, progress, resume=resume, layers=resolved.describe(),
                         on_splits=None if quiet else before_training, builtin_data=builtin_data)


def subset_table(subsets: dict[str, dict[str, float]], title: str) -> Table:
    """Accuracy / macro-F1 per modality subset."""
    table = Table(title=title)
    for col in ("modalities", "accuracy", "macro-F1", "n"):
        table.add_column(col, justify="left" if col == "modalities" else "right")
    for name, fig in subsets.items():
        table.add_row(name, f"{fig['accuracy']:.4f}", f"{fig['macro_f1']:.4f}", f"{int(fig['n'])}")
    return table
