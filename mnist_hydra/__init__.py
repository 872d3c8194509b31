"""mnist-hydra: train, compare and sweep Keras CNNs described by Hydra YAML configs."""

__version__ = "0.1.0"
