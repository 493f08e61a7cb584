"""Serve settings checks, the libpython fix and the missing-extra error (the live server: test_client.py)."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from mmedge.bundle import Bundle
from mmedge.errors import BackendError, InputError, MissingDependencyError
from mmedge.serve import server
from mmedge.serve.loadtest import free_ports
from mmedge.serve.server import ServeOptions, interpreter_libdir, stub_library_path


def test_library_path_goes_first() -> None:
    libdir = interpreter_libdir()
    if libdir is None:
        pytest.skip("this interpreter has no shared libpython (nothing for the stub to link)")
    assert Path(libdir) == Path(sysconfig.get_config_var("LIBDIR"))
    env = {"LD_LIBRARY_PATH": "/opt/other"}
    assert stub_library_path(env) == libdir and env["LD_LIBRARY_PATH"] == f"{libdir}:/opt/other"
    assert stub_library_path(env) is None and env["LD_LIBRARY_PATH"] == f"{libdir}:/opt/other"  # once
    empty: dict[str, str] = {}
    stub_library_path(empty)
    assert empty == {"LD_LIBRARY_PATH": libdir}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_batch": 65}, "--max-batch must be 1..64"),
    ({"max_batch": 0}, "--max-batch must be 1..64"),
    ({"instances": 0}, "--instances must be at least 1"),
    ({"http_port": 9000, "grpc_port": 9000}, "three different ports"),
])
def test_bad_settings(tiny_bundle_pristine: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        ServeOptions(**kwargs).check(Bundle.load(tiny_bundle_pristine))  # type: ignore[arg-type]


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, tiny_bundle_pristine: Path) -> None:
    monkeypatch.setitem(sys.modules, "pytriton", None)  # import pytriton → ImportError
    monkeypatch.setitem(sys.modules, "pytriton.triton", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'mmedge\[serve\]'"), \
            server.running(tiny_bundle_pristine, ServeOptions()):
        pass


def _system_libpython_differs() -> bool:
    """True when the stub, left alone, would load a libpython outside this interpreter's LIBDIR."""
    import subprocess

    import pytriton

    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stubs = Path(pytriton.__file__).parent / "tritonserver" / "python_backend_stubs"
    stub = stubs / version / "triton_python_backend_stub"
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, env=env, check=False).stdout
    found = [line.split("=>")[1].split()[0] for line in out.splitlines() if "libpython" in line and "=>" in line]
    libdir = interpreter_libdir()
    return bool(found and libdir and Path(found[0]).parent.resolve() != Path(libdir).resolve())


def test_the_pitfall_is_real_and_explained(monkeypatch: pytest.MonkeyPatch, tiny_bundle_pristine: Path) -> None:
    """With the fix switched off the server does not come up, and the error says why in one line."""
    pytest.importorskip("pytriton", reason="the serve extra (pip install 'mmedge[serve]') is not installed")
    if not _system_libpython_differs():
        pytest.skip("this interpreter's libpython is the one the stub links: no pitfall on this machine")
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    monkeypatch.setattr(server, "stub_library_path", lambda *a, **k: None)
    http, grpc, metrics = free_ports(3)
    with pytest.raises(BackendError) as info:
        server.serve(tiny_bundle_pristine, ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics))
    message = str(info.value)
    assert "'_recursion_count'" in message and f"LD_LIBRARY_PATH={interpreter_libdir()}" in message
    assert "\n" not in message
