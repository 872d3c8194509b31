"""Hyperparameter search with Optuna: the search space, the study and its storage, the plots.

The sweeper itself (hydra/sweeper=optuna) is a Hydra plugin,
hydra_plugins/mnist_hydra_launchers/optuna_sweeper.py; each trial's job reports to its study
from mnist_hydra/training/pruning.py. Nothing here imports TensorFlow.
"""
