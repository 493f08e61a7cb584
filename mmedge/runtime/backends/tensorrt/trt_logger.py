"""A `trt.ILogger` that writes TensorRT's messages to a log file and to python logging.

This module imports `tensorrt` at the top, so it is only imported by code that already
checked TensorRT is installed (build and runner), never by `import mmedge`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import IO

import tensorrt as trt

log = logging.getLogger("mmedge.tensorrt")

_LEVELS = {
    trt.ILogger.Severity.INTERNAL_ERROR: (logging.CRITICAL, "F"),
    trt.ILogger.Severity.ERROR: (logging.ERROR, "E"),
    trt.ILogger.Severity.WARNING: (logging.WARNING, "W"),
    trt.ILogger.Severity.INFO: (logging.INFO, "I"),
    trt.ILogger.Severity.VERBOSE: (logging.DEBUG, "V"),
}


class CapturingLogger(trt.ILogger):
    """TensorRT logger: every message to `log_path` (if given) and to python logging.

    Keeps the error messages so failures can be reported in one line. TensorRT may call
    `log` from several threads; writes are serialized.
    """

    def __init__(self, log_path: Path | None = None, verbose: bool = False) -> None:
        trt.ILogger.__init__(self)
        self.log_path = log_path
        self.errors: list[str] = []
        self.warnings = 0
        self._verbose = verbose
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        """Receive one TensorRT message."""
        level, tag = _LEVELS.get(severity, (logging.INFO, "?"))
        if level == logging.DEBUG and not self._verbose:
            return  # VERBOSE builder output is megabytes; opt in with verbose=True
        with self._lock:
            if level >= logging.ERROR:
                self.errors.append(msg)
            elif level == logging.WARNING:
                self.warnings += 1
            if self._fh is not None:
                self._fh.write(f"{time.strftime('%H:%M:%S')} [{tag}] {msg}\n")
        # INFO from TensorRT is chatty: keep it at DEBUG in python logging, the file has it all.
        log.log(logging.DEBUG if level <= logging.INFO else level, "%s", msg)

    def last_errors(self, n: int = 3) -> str:
        """The last `n` error messages joined on one line."""
        return " | ".join(e.strip().replace("\n", " ") for e in self.errors[-n:])

    def close(self) -> None:
        """Close the log file (the logger stays usable, messages then go to python logging only)."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
