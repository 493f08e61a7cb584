"""Helpers for tests that drive the real CLI through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mmedge.cli.main import app

runner = CliRunner()


def invoke(*args: object) -> Any:
    """Run `mmedge ARGS…` in-process."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result: Any, pattern: str) -> None:
    """A non-zero exit with an `error:` line containing `pattern`, and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1, result.output  # exactly one error line: the message never spans lines
    assert errors[0].startswith("error: ") and pattern in errors[0], result.output
    assert not result.output[result.output.index(errors[0]) + len(errors[0]):].strip(), result.output


def write_digits_manifest(folder: Path, count: int, audio: bool = True, name: str = "data.jsonl") -> Path:
    """A labelled JSONL of `count` real digits test rows (text + PNG [+ 8 kHz WAV] files), no split field."""
    import json

    import soundfile as sf
    from PIL import Image

    from mmedge.data.digits import LABELS, load_digits

    rows = []
    for i, s in enumerate(load_digits("test", limit=count).samples):
        Image.fromarray(s.image).save(folder / f"{i}.png")
        row = {"text": s.text, "image": f"{i}.png", "label": LABELS[s.label]}
        if audio:
            sf.write(folder / f"{i}.wav", s.audio, 8000)
            row["audio"] = f"{i}.wav"
        rows.append(json.dumps(row))
    (folder / name).write_text("\n".join(rows) + "\n")
    return folder / name
