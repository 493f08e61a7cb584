"""Environment record, ISA detection and peak estimates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mmedge.bench import envinfo

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_tile amx_int8 amx_bf16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_tile amx_int8 amx_bf16

"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 62.50
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd42
"""


def test_record_is_json_and_complete(tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_text('{"schema_version": 1}\n')
    record = envinfo.environment_record(tmp_path)
    json.dumps(record)  # must be serializable as is
    for key in ("timestamp", "hostname", "python", "os", "packages", "cpu", "gpu", "threads_env", "git"):
        assert key in record
    assert record["packages"]["numpy"] is not None
    assert record["packages"]["mmedge"] is not None
    assert "OMP_NUM_THREADS" in record["threads_env"]
    assert record["bundle"]["bundle_json_sha256"] is not None
    assert len(record["bundle"]["bundle_json_sha256"]) == 64
    assert record["cpu"]["cores"]["logical"] >= 1


def test_missing_bundle_json_is_recorded_not_fatal(tmp_path: Path) -> None:
    record = envinfo.environment_record(tmp_path)
    assert record["bundle"]["bundle_json_sha256"] is None


def test_bench_never_imports_torch() -> None:
    import subprocess

    code = (
        "import sys\n"
        "from mmedge.bench import costmodel, envinfo, plots, report, stats, tegrastats, timers\n"
        "envinfo.environment_record(None)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'matplotlib' not in sys.modules and 'onnx' not in sys.modules, 'heavy import at load'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_isa_flags_and_model_x86() -> None:
    flags = envinfo.isa_flags(X86_CPUINFO)
    assert flags["avx2"] and flags["avx512f"] and flags["avx512_vnni"] and flags["amx"]
    assert not flags["avx_vnni"]
    assert envinfo.cpu_model(X86_CPUINFO) == "Intel(R) Xeon(R) Platinum 8480+"
    assert envinfo.fp32_flops_per_cycle(flags)[0] == 64


def test_isa_flags_and_model_arm() -> None:
    flags = envinfo.isa_flags(ARM_CPUINFO)
    assert flags["asimd"] and flags["asimddp"] and not flags["avx2"] and not flags["sve"]
    assert "0xd42" in (envinfo.cpu_model(ARM_CPUINFO) or "")
    assert envinfo.fp32_flops_per_cycle(flags)[0] == 16


def test_peak_gflops_formula() -> None:
    avx2 = {"avx2": True, "fma": True}
    assert envinfo.cpu_peak_gflops(cores=4, freq_mhz=3000.0, flags=avx2) == pytest.approx(4 * 3.0 * 32)
    assert envinfo.cpu_peak_gflops(cores=8, freq_mhz=2000.0, flags={"avx512f": True}) == pytest.approx(1024.0)
    assert envinfo.cpu_peak_gflops(cores=0, freq_mhz=2000.0, flags=avx2) is None
    assert envinfo.fp32_flops_per_cycle({})[0] == 8


def test_peak_rss_is_positive() -> None:
    rss = envinfo.peak_rss_mb()
    assert rss is not None and rss > 1.0


def test_git_commit_of_a_real_repo(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    assert envinfo.git_commit(tmp_path) is None  # no commit yet
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "m"], cwd=tmp_path, check=True, env=env)
    info = envinfo.git_commit(tmp_path)
    assert info is not None and len(info["commit"]) == 40 and info["dirty"] is False
    (tmp_path / "f").write_text("y")
    assert envinfo.git_commit(tmp_path) == {"commit": info["commit"], "dirty": True}


def test_gpu_info_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envinfo.shutil, "which", lambda name: None)
    assert envinfo.gpu_info() is None
    assert envinfo.git_commit() is None
