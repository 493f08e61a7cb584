"""`mmedge doctor` as one library call: gather (or load) the environment, apply the rules, summarize."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmedge.doctor.environment import Environment, gather
from mmedge.doctor.rules import STATUSES, Check, diagnose, exit_code
from mmedge.errors import InputError


@dataclass
class DoctorReport:
    """The environment, every check, and the exit code they imply."""

    environment: Environment
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        """0 unless a check is an error (docs/outside_tools.md)."""
        return exit_code(self.checks)

    def counts(self) -> dict[str, int]:
        """How many checks have each status."""
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_json(self) -> dict[str, Any]:
        """The one JSON document of `mmedge doctor --json`."""
        return {"exit_code": self.exit_code, "counts": self.counts(), "checks": [c.to_json() for c in self.checks],
                "environment": self.environment.to_json()}


def load_environment(path: str | Path) -> Environment:
    """A recorded environment: a file of `Environment.to_json()` or a whole `doctor --json` document."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except FileNotFoundError:
        raise InputError(f"environment file not found: {source}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read environment file {source}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("environment"), dict):
        data = data["environment"]
    return Environment.from_json(data)


def doctor(environment: Environment | None = None) -> DoctorReport:
    """Judge `environment` (default: this machine, gathered now)."""
    env = environment if environment is not None else gather()
    return DoctorReport(env, diagnose(env))
