"""Optuna's own plots of a search, drawn with matplotlib into the sweep folder beside summary.md."""

import logging
import warnings
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; a sweep may run where there is no display
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from mnist_hydra.errors import first_line  # noqa: E402
from mnist_hydra.files import write_atomically  # noqa: E402

log = logging.getLogger(__name__)

# File name: what it shows. Every trial's curve is in the intermediate values, pruned ones too.
PLOTS = {
    "optimization_history.png": optuna_plots.plot_optimization_history,
    "intermediate_values.png": optuna_plots.plot_intermediate_values,
    "param_importances.png": optuna_plots.plot_param_importances,
}


def plot_study(study: optuna.Study, folder: Path, objectives: list[str]) -> list[str]:
    """Draw the plots a study can give; return the files written. A search of several objectives
    gets its Pareto front. A plot that cannot be drawn (too few finished trials, no curves) is
    skipped with one line saying why."""
    if len(study.directions) > 1:
        plots = {"pareto_front.png": partial(optuna_plots.plot_pareto_front, target_names=objectives)}
    else:
        plots = {
            name: plot if name == "intermediate_values.png" else partial(plot, target_name=objectives[0])
            for name, plot in PLOTS.items()
        }
    written, verbosity = [], optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # its "no complete trials" goes in our line
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" and "too few trials" warnings
                axes = plot(study)
            figure = axes.get_figure() if hasattr(axes, "get_figure") else axes.flat[0].get_figure()
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            write_atomically(folder / name, partial(figure.savefig, format="png", dpi=90))
            written.append(name)
        except Exception as error:  # Optuna raises several kinds for a study it cannot plot
            log.info("Optuna's plot %s: not drawn (%s)", name, first_line(error))
        finally:
            plt.close("all")
    optuna.logging.set_verbosity(verbosity)
    return written
