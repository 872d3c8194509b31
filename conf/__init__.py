# Makes conf/ importable as `mnist_hydra.conf` (pyproject.toml maps it into the
# package), so that Hydra finds these files through pkg:// wherever it is installed.
