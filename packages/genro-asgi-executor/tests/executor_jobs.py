"""Job functions for the tests: module-level, so worker processes can import them."""

from __future__ import annotations

import os
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path

from genro_asgi_executor import TaskCancelled, current_task, report_progress

POLL = 0.005  # seconds between checks of a flag: short, only to avoid a busy spin


def add(a: int, b: int = 0) -> int:
    return a + b


def whoami() -> dict[str, object]:
    task = current_task()
    return {"pid": os.getpid(), "thread": threading.current_thread().name,
            "task_id": task.task_id if task else None}


def boom(message: str = "boom") -> None:
    raise ValueError(message)


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickling rebuilds it with one argument
        super().__init__(f"{a}-{b}")


def raise_unpicklable() -> None:
    raise Unpicklable(1, 2)


def return_lock() -> object:
    return threading.Lock()


def typed_result() -> dict[str, object]:
    return {"total": Decimal("12.50"), "items": [1, 2]}


def die(code: int = 3) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for_file(path: str, steps: int = 4) -> str:
    """Report progress 0..steps, then wait (cooperatively cancellable) until ``path`` exists."""
    for step in range(steps):
        report_progress(step / steps, f"step {step}")
    flag = Path(path)
    while not flag.exists():
        task = current_task()
        if task is not None:
            task.check_cancelled()
        time.sleep(POLL)
    report_progress(1.0, "done")
    return flag.read_text()


def wait_for_event(started: threading.Event, release: threading.Event) -> str:
    """Thread jobs only: signal start, then wait for ``release`` or a cancellation."""
    started.set()
    task = current_task()
    while not release.wait(POLL):
        if task is not None and task.cancelled:
            raise TaskCancelled("stopped at a check")
    return "released"


def ignore_cancel(started: threading.Event, release: threading.Event) -> str:
    started.set()
    release.wait(30)
    return "finished anyway"


def write_pid(pid_file: str) -> None:
    """Atomically, so a reader never sees an empty file."""
    partial = Path(pid_file + ".part")
    partial.write_text(str(os.getpid()))
    partial.rename(pid_file)


def sleep_forever(pid_file: str) -> None:
    write_pid(pid_file)
    while True:
        time.sleep(1)


def burn(n: int) -> int:
    """CPU work: sum of squares, reporting progress every tenth."""
    total = 0
    step = max(n // 10, 1)
    for i in range(n):
        total += i * i
        if i % step == 0:
            report_progress(i / n)
    return total


def chatty(count: int) -> int:
    for i in range(count):
        report_progress(i / count, f"{i}")
    return count


def bad_progress(value: object) -> None:
    report_progress(value)  # type: ignore[arg-type]


def crunch_until_file(flag: str, chunk: int = 20_000) -> dict[str, object]:
    """CPU-bound: crunch numbers in chunks, reporting progress, until ``flag`` exists."""
    rounds, total = 0, 0
    while not Path(flag).exists():
        total += sum(i * i for i in range(chunk))
        rounds += 1
        report_progress(min(0.9, rounds / 100), f"round {rounds}")
    report_progress(1.0, "finished")
    return {"rounds": rounds, "total": Decimal(total), "pid": os.getpid()}


def echo(value: object) -> object:
    return value


def close_pipe_and_linger(pid_file: str) -> None:
    """Close every inherited descriptor (the worker's pipe among them), then live on."""
    write_pid(pid_file)
    os.closerange(3, 1024)
    while True:
        time.sleep(1)


def deep(depth: int) -> object:
    """A result nested ``depth`` lists deep: encoders refuse it (recursion limits)."""
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def wait_for_file_writing_pid(flag: str, pid_file: str) -> str:
    write_pid(pid_file)
    return wait_for_file(flag, 0)


def child_signals() -> list[str]:
    """Which of SIGINT, SIGTERM, SIGHUP, SIGQUIT a subprocess started by a job finds ignored
    (SIG_IGN, inherited across exec) rather than at Python's defaults."""
    import subprocess
    import sys

    code = ("import signal as s; print(' '.join(n for n in ('SIGINT', 'SIGTERM', 'SIGHUP', "
            "'SIGQUIT') if s.getsignal(getattr(s, n)) == s.SIG_IGN))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=30).stdout.split()
