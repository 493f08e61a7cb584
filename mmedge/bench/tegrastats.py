"""Jetson power and utilization from `tegrastats`: a tolerant line parser and a background monitor.

Line formats differ by JetPack release and module, for example:

* JetPack 4 (Nano):        ``... GR3D_FREQ 0%@76 ... POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406``
* JetPack 4 (Xavier NX):   ``... VDD_IN 6140/5510 VDD_CPU_GPU_CV 2706/2119 VDD_SOC 1074/1051``
* JetPack 4 (AGX Xavier):  ``... GPU 120/100 CPU 468/450 SOC 937/900 CV 0/0 VDDRQ 312/234 SYS5V 1458/1400``
* JetPack 5 (AGX Orin):    ``04-24-2023 00:01:24 RAM ... GR3D_FREQ 0%@[0,0] ... VDD_GPU_SOC 2399mW/2399mW
  VDD_CPU_CV 400mW/400mW VIN_SYS_5V0 4032mW/4032mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW``
* JetPack 6 (Orin Nano):   ``... GR3D_FREQ 0% cpu@45.875C ... VDD_IN 4968mW/4968mW
  VDD_CPU_GPU_CV 436mW/436mW VDD_SOC 1708mW/1708mW``

Each rail reads "instantaneous/average" in mW; the average is tegrastats' running mean since
it started, so energy here always integrates the instantaneous values.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from mmedge.errors import BackendError

logger = logging.getLogger(__name__)

# Rails that measure the whole module input; every other rail is a sub-rail of these.
TOTAL_RAILS: tuple[str, ...] = ("VDD_IN", "POM_5V_IN")
UNCONNECTED_RAILS = frozenset({"NC"})
_SENSOR_OFF_C = -256.0  # tegrastats prints -256C for a powered-down thermal zone

_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"(?<![\w%])([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
# NAME inst[mW]/avg[mW] (JP5+ suffix mW; JP4 bare numbers) or NAME instmW (some builds): RAM/SWAP
# never match because their numbers end in MB/kB.
_RAIL = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
_RAIL_MW_ONLY = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)mW(?=\s|$)")


@dataclass
class TegraSample:
    """One parsed tegrastats line; fields a given JetPack does not print stay None/empty."""

    timestamp: _dt.datetime | None = None
    rails: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # name -> (inst mW, avg mW)
    gr3d_pct: float | None = None
    gr3d_freq_mhz: list[int] = field(default_factory=list)
    emc_pct: float | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    swap_used_mb: int | None = None
    swap_total_mb: int | None = None
    cpu_pct: list[float | None] = field(default_factory=list)  # None for a core that is off
    temps_c: dict[str, float] = field(default_factory=dict)
    raw: str = ""


def _parse_cpu(body: str) -> list[float | None]:
    """Per-core load from 'CPU [12%@1420,off,...]' (or the old '[12%,8%]@1420')."""
    loads: list[float | None] = []
    for entry in body.split(","):
        entry = entry.strip()
        match = re.match(r"(\d+)%", entry)
        loads.append(float(match.group(1)) if match else None)
    return loads


def _parse_rails(line: str) -> dict[str, tuple[int, int | None]]:
    """Power rails of a line, skipping unconnected ('NC') channels."""
    rails: dict[str, tuple[int, int | None]] = {}
    for match in _RAIL.finditer(line):
        name, inst, avg = match.group(1), match.group(2), match.group(3)
        if name in UNCONNECTED_RAILS:
            continue
        if avg is None and not _RAIL_MW_ONLY.fullmatch(match.group(0)):
            continue  # 'APE 150', 'VIC_FREQ 729': a number without mW and without /avg
        rails[name] = (int(inst), int(avg) if avg is not None else None)
    return rails


def parse_line(line: str) -> TegraSample | None:
    """Parse one tegrastats line; None for lines that carry no tegrastats fields."""
    sample = TegraSample(raw=line.rstrip("\n"))
    if match := _TIMESTAMP.match(line):
        try:
            sample.timestamp = _dt.datetime.strptime(match.group(1), "%m-%d-%Y %H:%M:%S")
        except ValueError:
            logger.debug("unparseable tegrastats timestamp %r", match.group(1))
    if match := _RAM.search(line):
        sample.ram_used_mb, sample.ram_total_mb = int(match.group(1)), int(match.group(2))
    if match := _SWAP.search(line):
        sample.swap_used_mb, sample.swap_total_mb = int(match.group(1)), int(match.group(2))
    if match := _CPU.search(line):
        sample.cpu_pct = _parse_cpu(match.group(1))
    if match := _EMC.search(line):
        sample.emc_pct = float(match.group(1))
    if match := _GR3D.search(line):
        sample.gr3d_pct = float(match.group(1))
        if match.group(2):
            sample.gr3d_freq_mhz = [int(f) for f in match.group(2).split(",") if f]
    for name, value in _TEMP.findall(line):
        if float(value) > _SENSOR_OFF_C:
            sample.temps_c[name] = float(value)
    sample.rails = _parse_rails(line)
    if not (sample.rails or sample.ram_total_mb is not None or sample.gr3d_pct is not None):
        return None
    return sample


def parse_lines(lines: Iterable[str]) -> list[TegraSample]:
    """Parse many lines, dropping blank, comment ('#') and non-tegrastats lines."""
    out = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sample = parse_line(line)
        if sample is not None:
            out.append(sample)
    return out


def power_source(sample: TegraSample) -> str | None:
    """Which rail(s) total_power_mw uses for this sample: a total rail's name, or 'sum(...)'."""
    for name in TOTAL_RAILS:
        if name in sample.rails:
            return name
    if sample.rails:
        return "sum(" + "+".join(sample.rails) + ")"
    return None


def total_power_mw(sample: TegraSample) -> float | None:
    """Module power in mW: the module-input rail when printed, else the sum of all rails.

    VDD_IN (Xavier NX, Orin NX/Nano, TX2) and POM_5V_IN (Nano) measure the module input, and
    the other rails on those modules are parts of it, so summing would double-count. AGX
    Xavier (GPU, CPU, SOC, CV, VDDRQ, SYS5V) and AGX Orin (VDD_GPU_SOC, VDD_CPU_CV,
    VIN_SYS_5V0, VDDQ_VDD2_1V8AO) print no input rail: there the rails are summed, the same
    convention as jetson-stats (jtop). VIN_SYS_5V0 is deliberately not treated as a total: on
    AGX Orin it is the 5 V system rail alone (the GPU and CPU rails are not part of it).
    Carrier-board power is never included. None when the line has no rails.
    """
    for name in TOTAL_RAILS:
        if name in sample.rails:
            return float(sample.rails[name][0])
    if not sample.rails:
        return None
    return float(sum(inst for inst, _ in sample.rails.values()))


def mean_power_mw(samples: Sequence[TegraSample]) -> float:
    """Mean module power over samples that report power; ValueError if none do."""
    powers = [p for p in (total_power_mw(s) for s in samples) if p is not None]
    if not powers:
        raise ValueError("no tegrastats sample with a power rail: cannot compute power or energy")
    return sum(powers) / len(powers)


def energy_per_inference(
    samples: Sequence[TegraSample], duration_s: float, inferences: int, baseline_mw: float = 0.0
) -> float:
    """Energy per inference in mJ: (mean power - baseline) x duration / inferences.

    mW x s = mJ. `samples` should cover only the measured window (see
    `TegrastatsMonitor.samples_between`); pass an idle `baseline_mw` to get dynamic energy.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if inferences <= 0:
        raise ValueError(f"inferences must be > 0, got {inferences}")
    return (mean_power_mw(samples) - baseline_mw) * duration_s / inferences


class TegrastatsMonitor:
    """Run `tegrastats --interval N` in the background and collect parsed samples.

    ``with TegrastatsMonitor(interval_ms=100) as mon: ...`` then read ``mon.samples``;
    each sample's arrival time (time.monotonic) is in ``mon.arrivals`` so the harness can
    keep only the samples inside its measured window (``mon.samples_between(t0, t1)``).
    """

    def __init__(self, interval_ms: int = 100, binary: str = "tegrastats") -> None:
        if interval_ms < 1:
            raise ValueError(f"interval_ms must be >= 1, got {interval_ms}")
        self.interval_ms = interval_ms
        self.binary = binary
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._samples: list[TegraSample] = []
        self._arrivals: list[float] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    def _reader(self) -> None:
        """Thread body: parse each stdout line until the process ends."""
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_line(line)
            if sample is None:
                logger.debug("ignoring tegrastats line %r", line.rstrip())
                continue
            now = time.monotonic()
            with self._lock:
                self._samples.append(sample)
                self._arrivals.append(now)

    def start(self) -> None:
        """Spawn tegrastats; raises BackendError where it does not exist (not a Jetson)."""
        exe = shutil.which(self.binary)
        if exe is None:
            raise BackendError(
                f"power measurement needs NVIDIA's '{self.binary}' tool, which is not on PATH: it exists "
                "only on Jetson devices with JetPack (L4T). Run the benchmark on a Jetson, or without "
                "power measurement."
            )
        try:
            self._proc = subprocess.Popen(
                [exe, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            raise BackendError(f"could not start {exe}: {exc}") from exc
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._reader, name="tegrastats-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Terminate tegrastats and wait for the reader thread to drain its output."""
        if self._proc is None:
            return
        self.stopped_at = time.monotonic()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=3)
        if self._thread is not None:
            self._thread.join(timeout=3)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def __enter__(self) -> TegrastatsMonitor:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def samples(self) -> list[TegraSample]:
        """Copy of every sample collected so far."""
        with self._lock:
            return list(self._samples)

    @property
    def arrivals(self) -> list[float]:
        """time.monotonic() at which each sample arrived (parallel to `samples`)."""
        with self._lock:
            return list(self._arrivals)

    def samples_between(self, t0: float, t1: float) -> list[TegraSample]:
        """Samples that arrived within [t0, t1] on the time.monotonic() clock."""
        with self._lock:
            return [s for s, t in zip(self._samples, self._arrivals, strict=True) if t0 <= t <= t1]
