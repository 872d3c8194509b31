"""The errors a user sees, and how an exception is told in one line.

Each is a Hydra `CompactHydraException`: Hydra prints its message as one line, with no
traceback (HYDRA_FULL_ERROR=1 shows it), and exits non-zero. In a sweep, a job that
raises one fails alone.
"""

from hydra.errors import CompactHydraException


class MnistHydraError(CompactHydraException):
    """Anything this package refuses or cannot do, told in one line."""


class ConfigError(MnistHydraError):
    """A config value out of range, or values that do not fit together."""


class DataError(MnistHydraError):
    """A dataset file that is missing, truncated, too large or corrupted."""


class CheckpointError(MnistHydraError):
    """A checkpoint that cannot be found, read, trusted, or used with its run's dataset."""


class ImageError(MnistHydraError):
    """A file that is not a usable image, named."""


class NotAnImage(ImageError):
    """Bytes that no image decoder reads."""


class ImageTooLarge(ImageError):
    """An image with more bytes or pixels than allowed."""


class BlankImage(ImageError):
    """An image that holds nothing to read: blank, or only specks."""


class ExportError(MnistHydraError):
    """A model that could not be exported (a converter's failure, a full disk)."""


class RunFolderError(MnistHydraError):
    """A run folder that a run may not use: live, completed, or another run's."""


class JobCrashed(MnistHydraError):
    """A sweep's job whose process died without a word (a signal, the OOM killer)."""


class JobInterrupted(MnistHydraError):
    """A sweep's job stopped with its sweep (SIGTERM to the sweep, passed on to the job)."""


class JobPruned(MnistHydraError):
    """A search's trial that its pruner stopped early: not a failure (README: Search)."""

    def __init__(self, epoch: int, objective: str, value: float):
        super().__init__(f"pruned after epoch {epoch}: {objective} {value:.4f}")
        self.epoch, self.objective, self.value = epoch, objective, value

    def __reduce__(self):  # a job in another process sends it back pickled
        return (JobPruned, (self.epoch, self.objective, self.value))


def underlying(error: BaseException) -> BaseException:
    """The error at the bottom of a chain (Hydra and OmegaConf wrap what really went wrong)."""
    while error.__cause__ or error.__context__:
        error = error.__cause__ or error.__context__
    return error


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
