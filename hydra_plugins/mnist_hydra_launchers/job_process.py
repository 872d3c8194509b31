"""One job of ProcessPerJobJoblibLauncher: `python -m ... <scratch folder>`.

Reads the pickled job, runs it as the joblib plugin's workers do, and writes the pickled
JobReturn beside it (under a temporary name, then renamed: no result means no return).
"""

import os
import sys
from pathlib import Path

from hydra_plugins.hydra_joblib_launcher._core import execute_job
from joblib.externals import cloudpickle

from hydra_plugins.mnist_hydra_launchers.joblib_processes import JOB, RESULT


def main(scratch: Path) -> None:
    job_return = execute_job(*cloudpickle.loads((scratch / JOB).read_bytes()))
    partial = scratch / (RESULT + ".partial")
    partial.write_bytes(cloudpickle.dumps(job_return))
    os.replace(partial, scratch / RESULT)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
