"""A command's end: once a single run's work is written, its process ends without Python's teardown.

After a run's last line, the interpreter spent 1.2-1.4 s tearing down TensorFlow and Keras
(their thread pools, graphs and thousands of modules): a tenth of `experiment=fast`'s whole
process (docs/performance.md). Every file a command writes is closed before its task returns,
and Hydra's end-of-job callbacks have run once `main()` returns; what is left is to flush the
log and the console. A `-m` sweep still ends the slow way: its launchers' workers (joblib's,
Ray's) are stopped by their own exit handlers. A run that failed ends as Hydra ends it.
"""

import logging
import os
import sys
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

_single_run_returned = False


def task_returned() -> None:
    """Called by an entry point's task as it returns: was it a single run (not a sweep's job)?"""
    global _single_run_returned
    _single_run_returned = HydraConfig.get().mode == RunMode.RUN


def run_then_exit(main: Callable[[], object]) -> None:
    """Run a Hydra entry point; after a single run whose task returned, exit 0 at once."""
    main()
    if _single_run_returned:
        logging.shutdown()  # flushes and closes the run's log file
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
