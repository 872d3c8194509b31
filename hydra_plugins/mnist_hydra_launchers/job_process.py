"""One job of ProcessPerJobJoblibLauncher: `python -m ... <scratch folder>`.

Reads the pickled job, runs it as the joblib plugin's workers do, and writes the pickled
JobReturn beside it, whole or not at all: no result means that the process died.
"""

import sys
from pathlib import Path

from hydra_plugins.hydra_joblib_launcher._core import execute_job
from joblib.externals import cloudpickle

from hydra_plugins.mnist_hydra_launchers.joblib_processes import JOB, RESULT
from mnist_hydra.files import write_atomically


def main(scratch: Path) -> None:
    job_return = execute_job(*cloudpickle.loads((scratch / JOB).read_bytes()))
    result = cloudpickle.dumps(job_return)
    write_atomically(scratch / RESULT, lambda temporary: temporary.write_bytes(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
