"""Stopping a study: Ctrl-C, its workers (which leave the signal to the parent and stop on its
SIGTERM or its death), and signals left alone outside the main thread."""
from __future__ import annotations

import sys

import pytest


def test_ctrl_c_stops_a_study_quietly_and_tells_how_to_resume(tmp_path, monkeypatch, capsys):
    """In one process: exit status 130, no traceback, "run the same command again"."""
    from textgym.study import cli, run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_cell", interrupted)
    assert cli.main(["run", "smoke", "--out", str(tmp_path / "s"), "--quiet"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_study_workers_leave_ctrl_c_to_the_parent_which_ends_them():
    """Workers ignore SIGINT (a Ctrl-C reaches the whole process group; the parent cancels the
    queued runs and ends the running ones with SIGTERM, which they turn into SystemExit so that
    their ``finally`` blocks run)."""
    import multiprocessing as mp
    import os
    import signal
    import sys
    import time
    from concurrent.futures import ProcessPoolExecutor

    from textgym.study.run import _start_worker, _stop_workers, _until_stopped

    pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                               initargs=(os.getpid(),))
    pid = pool.submit(os.getpid).result(timeout=120)  # the worker has started (its initializer ran)
    err = pool.submit(_until_stopped, sys.exit, "error: boom").exception(timeout=60)
    assert isinstance(err, SystemExit) and err.code == "error: boom"  # another exit is reported, the worker lives
    pool.submit(_until_stopped, time.sleep, 60)  # as the study's workers run their cells
    queued = pool.submit(time.sleep, 60)
    (proc,) = pool._processes.values()
    assert proc.pid == pid
    time.sleep(0.5)  # the worker is inside time.sleep
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    assert proc.is_alive()  # ignored
    _stop_workers(pool)
    deadline = time.time() + 60  # the pool's manager thread may reap the child first: poll its exit code
    while proc.exitcode is None and time.time() < deadline:
        proc.join(0.1)
    assert proc.exitcode == 128 + signal.SIGTERM  # it took no queued run
    assert queued.cancelled() or queued.exception(timeout=30) is not None
    pool.shutdown(wait=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's")
@pytest.mark.parametrize("busy", [True, False])
def test_study_workers_stop_when_the_study_process_is_killed(tmp_path, busy):
    """A study killed from outside (SIGKILL, a scheduler's limit) left its workers training on;
    an idle worker (waiting for its next run) then hung in its exit."""
    import os
    import signal
    import subprocess
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, time, multiprocessing as mp\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from textgym.study.run import _start_worker, _until_stopped\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=mp.get_context('spawn'), initializer=_start_worker,\n"
        "                               initargs=(os.getpid(),))\n"
        "    pid = pool.submit(os.getpid).result(timeout=120)\n"
        + ("    pool.submit(_until_stopped, time.sleep, 120)\n" if busy else "") +
        "    print(pid, flush=True)\n"
        "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    worker = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(30)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return  # gone
        with open(f"/proc/{worker}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":  # exited, waiting to be reaped by init
                return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived the study's process")


def test_a_study_started_outside_the_main_thread_leaves_signals_alone():
    """Only the main thread may set signal handlers (signal.signal raised ValueError elsewhere)."""
    import signal
    import threading

    from textgym.study.run import _ctrl_c_ignored

    seen = []

    def body():
        with _ctrl_c_ignored():
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN already under nohup or a background job
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [before]  # ran, and changed nothing
    with _ctrl_c_ignored():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) == before  # restored


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals to a process")
def test_a_killed_study_stops_like_ctrl_c_and_leaks_nothing(tmp_path, oracle_data):
    """SIGTERM (``kill``, a scheduler's time limit) to ``study run --workers 2``: the workers
    finish their runs' checkpoints, the study exits with 143 and the resume message, and the
    resource tracker has no leaked semaphore to report (a stopped worker's tqdm lock was one).
    Before, the process died where it stood, silently, with exit status -15."""
    import os
    import signal
    import subprocess
    import time

    from textgym.data import data_dir

    out = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TEXTGYM_DATA": str(data_dir())}
    proc = subprocess.Popen([sys.executable, "-m", "textgym.study", "run", "smoke", "--workers", "2", "--seeds",
                             "0", "1", "2", "3", "--quiet", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not list(out.glob("cells/s*/*/record.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)  # once a first run has finished, the workers are training the next ones
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated; finished runs are kept" in err and "run the same command again to resume" in err
    assert "Traceback" not in err and "leaked" not in err, err
