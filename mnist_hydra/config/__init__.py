"""The configuration: its schemas (`schema.py`), and every check of every command's values
(`validate.py`, with the CNN family's in `model_checks.py`). Nothing here imports TensorFlow,
so `--help`, `--cfg job` and a refused value answer before it loads (pyproject.toml holds the
import contract that keeps it so)."""
