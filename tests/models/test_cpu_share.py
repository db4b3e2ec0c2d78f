"""Processes that run llama.cpp at once split the cores (models/cpu_share.py).

The marker directory is the real mechanism (files named after pids); the peers here are real
processes (``sleep``), and the last test runs the embedded model and reads the thread count back
from llama.cpp itself.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from models import cpu_share
from models.cpu_share import CpuShare


@pytest.fixture
def peer():
    """A live process standing in for another generating process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_alone_a_process_uses_every_core(tmp_path):
    share = CpuShare(cores=4, directory=tmp_path)
    assert share.threads() == 4
    with share.busy():
        assert share.marker.exists() and share.threads() == 4
    assert not share.marker.exists()


def test_busy_peers_split_the_cores_and_a_dead_ones_marker_is_removed(tmp_path, peer):
    share = CpuShare(cores=4, directory=tmp_path)
    other = CpuShare(cores=4, directory=tmp_path, pid=peer.pid)
    with share.busy():
        with other.busy():
            assert share.busy_processes() == 2 and share.threads() == 2
        assert share.threads() == 4  # the peer finished generating
        with other.busy():
            peer.kill()
            peer.wait()
            # killed -9 mid-generation: its marker stays, but a dead pid does not count
            assert other.marker.exists()
            assert share.threads() == 4
            assert not other.marker.exists()


def test_a_marker_whose_pid_now_belongs_to_another_process_is_ignored(tmp_path, peer):
    """The system reuses pids: the marker's start time must match the live process's."""
    import json
    share = CpuShare(cores=2, directory=tmp_path)
    other = CpuShare(cores=2, directory=tmp_path, pid=peer.pid)
    with share.busy(), other.busy():
        assert share.threads() == 1
        identity = json.loads(other.marker.read_text())
        assert identity["pid"] == peer.pid
        if identity.get("start_ticks") is None:
            pytest.skip("no /proc here: only the pid's existence can be checked")
        # the same pid, started at another time: the process that wrote the marker is gone
        other.marker.write_text(json.dumps({**identity, "start_ticks": identity["start_ticks"] - 1}))
        assert share.threads() == 2 and not other.marker.exists()


def test_nested_busy_counts_once_and_odd_files_are_ignored(tmp_path):
    share = CpuShare(cores=3, directory=tmp_path)
    (tmp_path / "notes.txt").write_text("not a pid")
    with share.busy():
        with share.busy():
            assert share.busy_processes() == 1
        assert share.marker.exists()  # still inside the outer use
    assert not share.marker.exists()


def test_more_peers_than_cores_still_leaves_one_thread(tmp_path, peer):
    share = CpuShare(cores=1, directory=tmp_path)
    (tmp_path / str(peer.pid)).touch()
    with share.busy():
        assert share.threads() == 1


def test_an_unusable_directory_does_not_stop_generation(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    share = CpuShare(cores=2, directory=blocker / "sub")  # cannot be created
    with share.busy():
        assert share.threads() == 2


def test_the_embedded_model_drops_to_its_share_while_a_peer_generates(tmp_path, monkeypatch, peer):
    """A real llama.cpp context: its thread count follows the number of busy processes."""
    import llama_cpp

    from models.base import GenParams
    from models.embedded import embedded_gguf_path
    from models.llama_cpp_backend import LlamaCppBackend

    monkeypatch.setattr(cpu_share.SHARE, "directory", tmp_path)
    monkeypatch.setattr(cpu_share.SHARE, "cores", 2)
    backend = LlamaCppBackend("share-test", embedded_gguf_path(), n_ctx=1072)  # threads: auto
    fixed = LlamaCppBackend("share-fixed", embedded_gguf_path(), n_ctx=1074, n_threads=2)
    chat = [{"role": "user", "content": "Say hello."}]
    params = GenParams(max_tokens=4, temperature=0.0)

    def ctx_threads(b):
        return llama_cpp.llama_n_threads(b.host.llm._ctx.ctx)

    backend.stream(chat, params).text()
    assert ctx_threads(backend) == 2  # alone: every core

    (tmp_path / str(peer.pid)).touch()  # another process is generating
    assert backend.stream(chat, params).text()
    assert backend.host.threads == ctx_threads(backend) == 1
    fixed.stream(chat, params).text()
    assert ctx_threads(fixed) == 2  # an explicit thread count is kept

    peer.kill()
    peer.wait()
    backend.stream(chat, params).text()
    assert ctx_threads(backend) == 2  # the peer is gone: every core again
    assert not any(tmp_path.iterdir())  # no marker left behind
