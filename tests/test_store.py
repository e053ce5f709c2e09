import os
import signal
import subprocess
import sys
import textwrap

import pytest

from provlib.core.store import MARKER, ArtifactStore, atomic_write_text


def test_builds_once_and_reuses(tmp_path):
    store, calls = ArtifactStore(tmp_path), []

    def build(d):
        calls.append(1)
        (d / "x.txt").write_text("done")

    first = store.get_or_build("thing", {"a": 1}, build)
    second = store.get_or_build("thing", {"a": 1}, build)
    assert first == second and len(calls) == 1 and (first / "x.txt").read_text() == "done"


def test_config_change_never_reuses_a_stale_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    a = store.get_or_build("thing", {"lr": 1e-4}, lambda d: (d / "v").write_text("a"))
    b = store.get_or_build("thing", {"lr": 2e-4}, lambda d: (d / "v").write_text("b"))
    assert a != b and (b / "v").read_text() == "b"


def test_failed_build_leaves_nothing_and_is_rebuilt(tmp_path):
    store = ArtifactStore(tmp_path)

    def crash(d):
        (d / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.get_or_build("thing", {"a": 1}, crash)
    assert not store.exists("thing", {"a": 1})
    assert list((tmp_path / "thing").iterdir()) == []
    path = store.get_or_build("thing", {"a": 1}, lambda d: (d / "full.txt").write_text("ok"))
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "full.txt"]


def test_killed_writer_leaves_no_reusable_partial_artifact(tmp_path):
    """SIGKILL a process in the middle of writing an artifact: the next run must not reuse any of it."""
    script = textwrap.dedent(f"""
        import os, time
        from provlib.core.store import ArtifactStore
        def build(d):
            (d / "weights.bin").write_bytes(b"x" * 1000)
            print("writing", flush=True)
            time.sleep(60)
        ArtifactStore({str(tmp_path)!r}).get_or_build("model", {{"a": 1}}, build)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(tmp_path)
    assert not store.exists("model", {"a": 1})
    assert store.clean_stale_temporaries() == 1
    calls = []
    path = store.get_or_build("model", {"a": 1}, lambda d: (calls.append(1), (d / "weights.bin").write_bytes(b"ok")))
    assert calls == [1] and (path / "weights.bin").read_bytes() == b"ok"


def test_atomic_write_text_replaces_whole_file(tmp_path):
    target = tmp_path / "r" / "t.csv"
    atomic_write_text(target, "a\n1\n")
    atomic_write_text(target, "a\n2\n")
    assert target.read_text() == "a\n2\n" and [p.name for p in target.parent.iterdir()] == ["t.csv"]
