"""mnist-hydra: train, compare and sweep Keras CNNs described by Hydra YAML configs."""

from mnist_hydra.console import keep_tensorflow_to_errors

# Before any of our modules imports TensorFlow: its C++ log lines below errors are noise to a
# user (mnist_hydra/console.py); a TF_CPP_MIN_LOG_LEVEL the user set wins.
keep_tensorflow_to_errors()

__version__ = "0.1.0"
