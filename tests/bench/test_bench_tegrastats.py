"""tegrastats parsing on recorded lines of every JetPack format, energy, and the monitor."""

from __future__ import annotations

import datetime as dt
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from mmedge.bench.tegrastats import (
    TegrastatsMonitor,
    energy_per_inference,
    mean_power_mw,
    parse_line,
    parse_lines,
    power_source,
    total_power_mw,
)
from mmedge.errors import BackendError, MmedgeError

DATA = Path(__file__).parent / "data"


def _samples(name: str):
    return parse_lines((DATA / f"tegrastats_{name}.txt").read_text().splitlines())


def test_every_recorded_file_parses_with_power() -> None:
    files = sorted(DATA.glob("tegrastats_*.txt"))
    assert len(files) >= 6
    for path in files:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        samples = parse_lines(path.read_text().splitlines())
        assert len(samples) == len(lines), path.name
        for sample in samples:
            assert sample.rails, path.name
            assert total_power_mw(sample) is not None
            assert sample.ram_used_mb is not None and sample.ram_total_mb is not None
            assert sample.gr3d_pct is not None
            assert sample.cpu_pct
            # RAM/SWAP/IRAM, engine frequencies and 'APE 150' are never mistaken for rails
            assert not {"RAM", "SWAP", "IRAM", "APE", "VIC_FREQ", "EMC_FREQ", "NC"} & set(sample.rails)


def test_jp4_nano_pom_rails_without_units() -> None:
    (s,) = _samples("jp4_nano")
    assert s.timestamp is None
    assert s.rails == {"POM_5V_IN": (1750, 1628), "POM_5V_GPU": (0, 0), "POM_5V_CPU": (366, 406)}
    assert total_power_mw(s) == 1750.0 and power_source(s) == "POM_5V_IN"
    assert s.gr3d_pct == 0.0 and s.gr3d_freq_mhz == [76]
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb, s.swap_total_mb) == (1923, 3964, 191, 1982)
    assert s.cpu_pct == [5.0, 4.0, 3.0, 6.0]
    assert s.temps_c["CPU"] == 40.0 and s.temps_c["thermal"] == 40.0
    assert s.emc_pct == 0.0


def test_jp4_xavier_nx_vdd_in_is_the_total() -> None:
    (s,) = _samples("jp4_xavier_nx")
    assert s.rails["VDD_IN"] == (6140, 5510)
    assert s.rails["VDD_CPU_GPU_CV"] == (2706, 2119)
    assert total_power_mw(s) == 6140.0  # sub-rails are not added on top
    assert s.gr3d_freq_mhz == [1109] and s.temps_c["thermal"] == 31.35


def test_jp5_xavier_nx_timestamp_units_and_off_cores() -> None:
    first, second = _samples("jp5_xavier_nx")
    assert first.timestamp == dt.datetime(2024, 7, 9, 13, 31, 31)
    assert first.rails == {"VDD_IN": (2763, 2846), "VDD_CPU_GPU_CV": (650, 670), "VDD_SOC": (650, 711)}
    assert first.gr3d_freq_mhz == [114]
    assert second.cpu_pct == [3.0, 7.0, 1.0, 0.0, None, None]
    assert total_power_mw(second) == 5079.0


def test_jp5_agx_orin_sums_rails_and_skips_nc_and_dead_sensors() -> None:
    first, second = _samples("jp5_agx_orin")
    assert first.rails == {
        "VDD_GPU_SOC": (2399, 2399),
        "VDD_CPU_CV": (400, 400),
        "VIN_SYS_5V0": (4032, 4032),
        "VDDQ_VDD2_1V8AO": (301, 301),
    }
    assert total_power_mw(first) == 2399 + 400 + 4032 + 301
    assert power_source(first) == "sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO)"
    assert "CV0" not in first.temps_c and "GPU" not in first.temps_c  # -256C = zone off
    assert first.temps_c["tj"] == 42.593 and first.temps_c["Tboard"] == 32.0
    assert first.gr3d_freq_mhz == [0] and len(first.cpu_pct) == 12
    assert second.gr3d_freq_mhz == [0, 0]
    assert (second.ram_used_mb, second.ram_total_mb) == (4321, 62801)


def test_jp5_orin_nx() -> None:
    (s,) = _samples("jp5_orin_nx")
    assert total_power_mw(s) == 4915.0
    assert s.cpu_pct[-2:] == [None, None]
    assert s.gr3d_freq_mhz == [305]


def test_jp6_orin_nano_with_and_without_gpu_frequency() -> None:
    idle, busy, _ = _samples("jp6_orin_nano")
    assert idle.gr3d_pct == 0.0 and idle.gr3d_freq_mhz == []
    assert idle.temps_c["cpu"] == 45.875 and idle.temps_c["soc2"] == 45.843
    assert total_power_mw(idle) == 4968.0
    assert busy.gr3d_pct == 63.0 and busy.gr3d_freq_mhz == [621] and busy.emc_pct == 43.0
    assert busy.rails["VDD_CPU_GPU_CV"] == (4667, 4667)
    assert total_power_mw(busy) == 12479.0


def test_jp6_agx_orin_engines_are_not_rails() -> None:
    (s,) = _samples("jp6_agx_orin")
    assert set(s.rails) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}
    assert total_power_mw(s) == 2412 + 1607 + 4707
    assert s.cpu_pct[0] == 14.0 and s.ram_used_mb == 18207


def test_jp4_agx_xavier_short_rail_names() -> None:
    # AGX Xavier on JetPack 4 prints rails without VDD_ prefixes or units.
    line = (
        "RAM 1545/31919MB (lfb 7400x4MB) SWAP 2/15959MB (cached 1MB) CPU [0%@1190,1%@1190] "
        "EMC_FREQ 1%@408 GR3D_FREQ 12%@318 AO@38C GPU@39.5C CPU@40C thermal@38.8C "
        "GPU 120/100 CPU 468/450 SOC 937/900 CV 0/0 VDDRQ 312/234 SYS5V 1458/1400"
    )
    s = parse_line(line)
    assert s is not None
    assert s.rails == {
        "GPU": (120, 100), "CPU": (468, 450), "SOC": (937, 900),
        "CV": (0, 0), "VDDRQ": (312, 234), "SYS5V": (1458, 1400),
    }  # fmt: skip
    assert total_power_mw(s) == 120 + 468 + 937 + 0 + 312 + 1458
    assert s.temps_c["CPU"] == 40.0 and s.cpu_pct == [0.0, 1.0]


def test_rail_without_average() -> None:
    s = parse_line("11-14-2024 22:54:33 RAM 4300/30698MB GR3D_FREQ 45% tj@52.468C VDD_GPU_SOC 2171mW")
    assert s is not None and s.rails == {"VDD_GPU_SOC": (2171, None)}
    assert s.gr3d_pct == 45.0 and total_power_mw(s) == 2171.0


def test_non_tegrastats_lines() -> None:
    assert parse_line("tegrastats started") is None
    assert parse_line("") is None
    assert parse_lines(["# comment", "", "garbage"]) == []
    sample = parse_line("RAM 1/2MB")
    assert sample is not None and total_power_mw(sample) is None and power_source(sample) is None


def test_energy_per_inference() -> None:
    samples = _samples("jp6_orin_nano")
    mean = (4968 + 12479 + 4824) / 3
    assert mean_power_mw(samples) == pytest.approx(mean)
    # 2 s at the mean power over 400 inferences: mW * s / n = mJ per inference
    assert energy_per_inference(samples, 2.0, 400) == pytest.approx(mean * 2.0 / 400)
    assert energy_per_inference(samples, 2.0, 400, baseline_mw=4000.0) == pytest.approx(
        (mean - 4000.0) * 2.0 / 400
    )
    with pytest.raises(ValueError):
        energy_per_inference(samples, 0.0, 10)
    with pytest.raises(ValueError):
        energy_per_inference(samples, 1.0, 0)
    with pytest.raises(ValueError, match="no tegrastats sample"):
        energy_per_inference([], 1.0, 10)


def test_monitor_without_tegrastats_raises_backend_error() -> None:
    monitor = TegrastatsMonitor(binary="tegrastats-definitely-not-installed")
    with pytest.raises(BackendError, match="Jetson") as info, monitor:
        pass
    assert isinstance(info.value, MmedgeError)
    with pytest.raises(ValueError):
        TegrastatsMonitor(interval_ms=0)


@pytest.mark.skipif(os.name != "posix", reason="needs a shell script as a fake tegrastats")
def test_monitor_collects_from_a_fake_tegrastats(tmp_path: Path) -> None:
    lines = (DATA / "tegrastats_jp6_orin_nano.txt").read_text().splitlines()
    fake = tmp_path / "tegrastats"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "assert sys.argv[1:] == ['--interval', '20'], sys.argv\n"
        f"lines = {lines!r}\n"
        "i = 0\n"
        "while True:\n"
        "    print(lines[i % len(lines)], flush=True)\n"
        "    i += 1\n"
        "    time.sleep(0.02)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    t0 = time.monotonic()
    with TegrastatsMonitor(interval_ms=20, binary=str(fake)) as monitor:
        deadline = time.monotonic() + 10
        while len(monitor.samples) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    t1 = time.monotonic()
    samples = monitor.samples
    assert len(samples) >= 5
    assert all(total_power_mw(s) is not None for s in samples)
    assert len(monitor.arrivals) == len(samples)
    assert monitor.samples_between(t0, t1) == samples
    assert monitor.samples_between(t1 + 1, t1 + 2) == []
    monitor.stop()  # idempotent
