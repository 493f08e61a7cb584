"""`mmedge train`: fine-tune a multimodal classifier and write a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mmedge.cli.common import console, handle_errors, print_json


def register(app: typer.Typer) -> None:
    """Add the `train` command."""
    app.command("train")(train)


def split_list(value: str | None) -> list[str] | None:
    """'a,b' → ['a', 'b'] (None stays None)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@handle_errors
def train(
    data: str | None = typer.Option(None, help="'digits' (built-in, the default) or a JSONL/CSV manifest."),
    out: Path = typer.Option(Path("runs/run"), "--out", "-o", help="Run directory to write."),
    preset: str = typer.Option("tiny", help="Starting configuration: tiny | edge."),
    config: Path | None = typer.Option(None, help="YAML/TOML/JSON config (overrides the preset)."),
    mode: str | None = typer.Option(None, help="full | frozen | lp-ft | partial | lora."),
    modalities: str | None = typer.Option(None, help="Comma list, e.g. text,image,audio."),
    fusion: str | None = typer.Option(None, help="concat | sum | mean | product | gated | attention."),
    epochs: int | None = typer.Option(None, min=1),
    seed: int | None = typer.Option(None),
    threads: int | None = typer.Option(None, min=1, help="torch threads (presets use 1)."),
    limit: int | None = typer.Option(None, min=1, help="Cap on samples per split (quick runs)."),
    encoder_lr_mult: float | None = typer.Option(None, help="Pretrained encoders' lr multiplier (full, lp-ft)."),
    partial_blocks: int | None = typer.Option(None, min=1, help="Blocks unfrozen by --mode partial."),
    lora_rank: int | None = typer.Option(None, min=1, help="LoRA rank for --mode lora."),
    lp_epochs: int | None = typer.Option(None, min=1, help="Linear-probe epochs for --mode lp-ft."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON."),
) -> None:
    """Train on the built-in dataset or your manifest; writes config, checkpoint and metrics."""
    from mmedge.config import load_config
    from mmedge.models.presets import preset_config

    cfg = load_config(config) if config else preset_config(preset)
    cfg.name = out.name
    if data:
        cfg.data = data
    overrides: dict[str, Any] = {"mode": mode, "epochs": epochs, "seed": seed, "threads": threads,
                                 "encoder_lr_mult": encoder_lr_mult, "partial_blocks": partial_blocks,
                                 "lora_rank": lora_rank, "lp_epochs": lp_epochs}
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg.train, key, value)
    if limit:
        cfg.limit = limit
    if modalities:
        cfg.model.modalities = split_list(modalities) or []
    if fusion:
        cfg.model.fusion = fusion
    result = run_with_progress(cfg, out, quiet=as_json)
    if as_json:
        print_json({"out": str(result.out_dir), **result.metrics})
        return
    console.print(subset_table(result.metrics["test"], f"test split — {out}"))
    console.print(f"trained in {result.seconds:.1f}s (best epoch {result.history.best_epoch}); "
                  f"next: mmedge export {out} --out export/{out.name}")


def run_with_progress(cfg: Any, out: Path, quiet: bool = False) -> Any:
    """train_run with a rich progress bar over epochs."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mmedge.train.run import train_run

    with Progress(TextColumn("[bold]train[/] {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task(cfg.name, total=cfg.train.epochs)

        def progress(epoch: int, epochs: int, fig: dict[str, float]) -> None:
            bar.update(task, completed=epoch, total=epochs,
                       description=f"{cfg.name} epoch {epoch} loss {fig['loss']:.3f} val {fig['val_accuracy']:.3f}")

        return train_run(cfg, out, progress)


def subset_table(subsets: dict[str, dict[str, float]], title: str) -> Table:
    """Accuracy / macro-F1 per modality subset."""
    table = Table(title=title)
    for col in ("modalities", "accuracy", "macro-F1", "n"):
        table.add_column(col, justify="left" if col == "modalities" else "right")
    for name, fig in subsets.items():
        table.add_row(name, f"{fig['accuracy']:.4f}", f"{fig['macro_f1']:.4f}", f"{int(fig['n'])}")
    return table
