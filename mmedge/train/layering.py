"""Config layering for `mmedge train`: preset → `--config` file (only what it names) → command-line flags.

A config file used to replace the preset wholesale, so `--preset edge --config my.yaml` trained the
tiny model. Now every layer overrides only the settings it names, and the result records which layer
set what, so the resolved config can be printed and stored with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge.config import RunConfig, flat_keys, from_dict, merge, read_config_data
from mmedge.errors import ConfigError

DEFAULT_PRESET = "tiny"


@dataclass
class ResolvedConfig:
    """The configuration to train with and, per layer, which settings it set."""

    config: RunConfig
    layers: list[tuple[str, list[str]]] = field(default_factory=list)  # (layer, dotted keys it set)

    def describe(self) -> list[str]:
        """One line per layer: 'preset edge', 'config my.yaml: train.patience, …', 'flags: train.epochs'."""
        return [f"{name}: {', '.join(keys)}" if keys else name for name, keys in self.layers]

    def to_json(self) -> dict[str, Any]:
        """The resolved config and its layers (printed by --json, stored in the run)."""
        return {"config": self.config.to_dict(), "layers": [{"layer": n, "keys": k} for n, k in self.layers]}


def nest(flags: dict[str, Any]) -> dict[str, Any]:
    """{'train.epochs': 3, 'limit': None} → {'train': {'epochs': 3}} (None = flag not given)."""
    out: dict[str, Any] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _file_preset(data: dict[str, Any], path: Path) -> str | None:
    model = data.get("model")
    preset = model.get("preset") if isinstance(model, dict) else None
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{path}: model.preset must be a preset name, got {preset!r}")
    return preset


def resolve_config(preset: str | None = None, config_file: str | Path | None = None,
                   flags: dict[str, Any] | None = None) -> ResolvedConfig:
    """Preset (given, else the file's model.preset, else tiny) → the file's settings → `flags` (dotted keys)."""
    from mmedge.models.presets import preset_config

    data = read_config_data(config_file) if config_file is not None else {}
    named = _file_preset(data, Path(config_file)) if config_file is not None else None
    if preset is not None and named is not None and preset != named:
        raise ConfigError(f"--preset {preset} conflicts with model.preset: {named} in {config_file}; "
                          "drop one of them")
    base_name = preset or named or DEFAULT_PRESET
    merged = preset_config(base_name).to_dict()
    layers: list[tuple[str, list[str]]] = [(f"preset {base_name}", [])]
    if config_file is not None:
        merged = merge(merged, data)
        from_dict(RunConfig, merged, str(config_file))  # unknown keys/types named with the file
        layers.append((f"config {config_file}", flat_keys(data)))
    given = nest(flags or {})
    if given:
        merged = merge(merged, given)
        layers.append(("flags", flat_keys(given)))
    return ResolvedConfig(from_dict(RunConfig, merged, "flags").validate(), layers)
