"""The native kernel's build: keyed per environment, never stuck on a dead builder's lock, announced when it compiles."""

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from funcdiff.operators.kernels import backends, native

ROOT = Path(__file__).resolve().parents[2]

# Takes the build lock of the file in argv[1], says so, then sleeps until killed.
HOLD_LOCK = """
import sys, time
from pathlib import Path
from funcdiff.operators.kernels.native import build_lock
with build_lock(Path(sys.argv[1]), timeout=5.0):
    print("locked", flush=True)
    time.sleep(600)
"""


def python(code: str, *args: str, ext_dir: Path, **kwargs: object) -> subprocess.Popen:
    """A Python child running ``code`` with this checkout importable and a private extension directory."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(ext_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT, text=True, **kwargs)


@pytest.fixture
def ext_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``TORCH_EXTENSIONS_DIR`` for this test."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    return tmp_path


def fake_compile(calls: list[list[str]]) -> object:
    """A stand-in for the compiler: records the folder's contents, then writes an empty 'library' there."""

    def compile_into(spec: native.BuildSpec, folder: Path, *, timeout: float) -> None:
        calls.append(sorted(p.name for p in folder.iterdir()))
        (folder / spec.library.name).write_bytes(b"")

    return compile_into


def test_build_key_differs_between_environments(ext_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two virtual environments (another ``sys.prefix``) or another torch get their own library and folder."""
    here = native.build_spec()
    assert here == native.build_spec()
    assert here.directory == ext_dir / here.name and here.library.parent == here.directory
    monkeypatch.setattr(sys, "prefix", "/elsewhere/.venv")
    other_venv = native.build_spec()
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    other_torch = native.build_spec()
    assert len({here.name, other_venv.name, other_torch.name}) == 3


def test_default_extension_directory_is_torchs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``TORCH_EXTENSIONS_DIR`` the kernel lives in torch's default extension directory."""
    from torch.utils import cpp_extension

    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    assert native.extensions_root() == Path(cpp_extension.get_default_build_root())


@pytest.mark.timeout(60)
def test_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    """A builder killed while holding the lock leaves a file naming it, but the lock itself is free at once."""
    path = tmp_path / "build.lock"
    holder = python(HOLD_LOCK, str(path), ext_dir=tmp_path, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "locked"
    assert f"pid {holder.pid}" in path.read_text()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    start = time.monotonic()
    with native.build_lock(path, timeout=5.0):
        assert f"pid {os.getpid()} on {socket.gethostname()}" in path.read_text()
    assert time.monotonic() - start < 1


@pytest.mark.timeout(60)
def test_lock_held_by_a_live_builder_times_out_with_a_message(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """While a live process builds, others say whom they wait for, and give up after ``timeout`` s."""
    path = tmp_path / "build.lock"
    holder = python(HOLD_LOCK, str(path), ext_dir=tmp_path, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(native.NativeBuildError, match="held"), native.build_lock(path, timeout=1.0):
            pass
        assert 1 <= time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert f"waiting for pid {holder.pid}" in caplog.text


def test_build_removes_folders_of_killed_builds(ext_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders of killed builds, torch's ``lock`` inside them, are removed; this process's folder starts empty."""
    calls: list[list[str]] = []
    monkeypatch.setattr(native, "_compile", fake_compile(calls))
    spec = native.build_spec()
    for pid in (999_999, os.getpid()):  # a dead builder's, and one whose pid this process now has
        stale = spec.directory / f"build-{socket.gethostname()}-{pid}"
        stale.mkdir(parents=True)
        (stale / "lock").touch()
    result = native.build()
    assert result.built and result.path == spec.library and spec.library.exists()
    assert calls == [[]]
    assert sorted(p.name for p in spec.directory.iterdir()) == [spec.library.name]  # the released lock leaves no file


def test_build_announces_compiling_only(ext_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A compile is announced at WARNING level (shown by default); loading a built library is silent unless forced."""
    calls: list[list[str]] = []
    monkeypatch.setattr(native, "_compile", fake_compile(calls))
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.build().built
        assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
        assert "compiling the native sparse kernel" in caplog.records[0].getMessage()
        caplog.clear()
        assert not native.build().built
        assert not caplog.records
        assert native.build(force=True).built
    assert len(calls) == 2


def test_failed_build_falls_back_to_pure_pytorch(
    ext_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A compile error or timeout makes `load` return None with a warning, and ``auto`` picks a pure-PyTorch backend."""

    def fail(spec: native.BuildSpec, folder: Path, *, timeout: float) -> None:
        raise native.NativeBuildError("compiling took more than 1 s")

    monkeypatch.setattr(native, "_compile", fail)
    assert native.load.__wrapped__() is None
    assert "unavailable (compiling took more than 1 s); using pure PyTorch" in caplog.text
    assert not any(native.build_spec().directory.glob("build-*"))
    monkeypatch.setattr(native, "load", lambda: None)
    cpu = torch.device("cpu")
    assert backends.choose_backend(2, 64, (16, 16), taps=9, device=cpu, dtype=torch.float32) != "native"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_build_survives_a_killed_build(tmp_path: Path) -> None:
    """Kill a compiling process; the next one does not hang, compiles with a message, and the one after loads quietly."""
    build = "from funcdiff.operators.kernels import native; r = native.build(); print(r.built, r.path); native.load().sparse_sum"
    first = python(build, ext_dir=tmp_path, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob("*/build-*/build.ninja")):  # torch has written its files and holds its own lock
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    first.kill()
    first.wait()
    first.stderr.close()
    assert any(tmp_path.glob("*/build-*/lock"))

    second = python(build, ext_dir=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = second.communicate(timeout=400)
    assert second.returncode == 0, err
    assert out.startswith("True") and "compiling the native sparse kernel" in err and "compiled" in err

    third = python(build, ext_dir=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0 and out.startswith("False") and err == ""
    assert not any(tmp_path.glob("*/build-*"))


@pytest.mark.timeout(60)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_build_leaves_no_compiler_running(tmp_path: Path) -> None:
    """``kill -9`` of the process that started a compile takes the compile child's whole group with it (a ``sleep``
    stands in for the compiler the child starts)."""
    grandchild = "import subprocess; subprocess.run(['sleep', '60'])"
    parent = textwrap.dedent(f"""
        import os, subprocess, sys
        from funcdiff.operators.kernels import native
        child = subprocess.Popen([sys.executable, "-c", native.GUARD + {grandchild!r}, "", str(os.getpid())],
                                 start_new_session=True)
        print(child.pid, flush=True)
        child.wait()
    """)
    holder = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    group = int(holder.stdout.readline())
    members = lambda: [p for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) == group]  # noqa: E731
    deadline = time.monotonic() + 20
    while len(members()) < 2 and time.monotonic() < deadline:  # the child and its sleep
        time.sleep(0.05)
    assert len(members()) >= 2
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    deadline = time.monotonic() + 10
    while members() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not members()


def _pgid(proc: Path) -> int | None:
    """The process group of a /proc entry, or None if it is gone (or a zombie's group is unreadable)."""
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[2])
