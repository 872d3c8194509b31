"""A sweep that is told to stop (SIGTERM: `kill`, `timeout`, a scheduler) stops whole.

The launchers write the sweep's plan (every job's number and overrides: run_folders.write_plan)
before they start any job, so that the summary lists the jobs that never ran as `not run`.
While a launch runs, SIGTERM sets `stopping`; the launcher passes it on to the jobs that run,
waits for them (each records itself `interrupted`), starts no other, and ends the sweep (exit
status 143) once all are accounted for.
"""

import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager

STOPPED_STATUS = 128 + signal.SIGTERM  # what a shell reports for a process that SIGTERM ended


def let_jobs_be_interrupted() -> None:
    """SIGINT back to Python's Ctrl-C, in the sweep's process, before it starts jobs elsewhere. A
    sweep started in a script's background (`cmd &`) inherits SIGINT ignored, and so would every
    process it starts: submitit cancels a local job with SIGINT, Ray a task by interrupting its
    worker's main thread, and neither would reach a job that ignores it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)  # its children start with SIG_DFL


@contextmanager
def stop_on_sigterm(on_stop: Callable[[], None]):
    """For the block: SIGTERM sets the event it yields and calls `on_stop` (in the main thread)."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping  # only the main thread may set signal handlers
        return

    def stop(signum, frame):
        stopping.set()
        on_stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGTERM, previous)
