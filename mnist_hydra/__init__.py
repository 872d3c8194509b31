"""mnist-hydra: train, compare and sweep Keras CNNs described by Hydra YAML configs."""

import os

# Set before any of our modules imports TensorFlow: its C++ start-up chatter (no CUDA
# driver, ...) is noise on a CPU machine; Python errors still surface as usual.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
