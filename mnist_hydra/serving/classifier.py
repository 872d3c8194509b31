"""One trained run's model, loaded once, answering one image at a time.

An image is prepared by its run's dataset, with the code `predict` uses (MNIST's digits:
inverted if dark on light, cropped, fitted into 20x20, centred by mass), so that the page,
the API and the command line always agree.
"""

import io
import json
import threading

import numpy as np

from mnist_hydra.building import build
from mnist_hydra.inference.checkpoints import load_model, open_run


class Classifier:
    def __init__(self, ckpt_path):
        self.run = open_run(ckpt_path)
        self.model = load_model(self.run)  # safe_mode: a model file that would run code is refused
        self.dataset = build("dataset", self.run.config.dataset)
        # One model call at a time (README: Serving has the measurement behind this); images
        # are prepared outside the lock, in parallel.
        self._model_lock = threading.Lock()
        self.model.predict_on_batch(
            np.zeros((1, *self.run.image_shape), np.float32)
        )  # traced now, not on a request

    def classify(self, data: bytes, name: str = "image") -> dict:
        """The predicted class, every class's probability, and the image the model saw.

        Raises an ImageError (NotAnImage, ImageTooLarge, BlankImage) for an unusable image."""
        prepared = self.dataset.prepare(io.BytesIO(data), name)
        with self._model_lock:
            probabilities = np.asarray(self.model.predict_on_batch(prepared[np.newaxis]))[0]
        best = int(np.argmax(probabilities))
        seen = prepared[..., 0] if prepared.shape[-1] == 1 else prepared  # (h, w) gray or (h, w, 3)
        return {
            "predicted": self.run.class_names[best],
            "index": best,
            "probabilities": [round(float(p), 6) for p in probabilities],
            "class_names": self.run.class_names,
            "image": np.round(seen, 4).tolist(),
        }

    def describe(self) -> dict:
        """What the page shows of the run: its name, dataset, classes and test accuracy."""
        try:
            record = json.loads((self.run.folder / "metrics.json").read_text())
        except (OSError, ValueError):  # a model file without its run's record
            record = {}
        return {
            "run": str(self.run.folder),
            "model_file": str(self.run.model_path),
            "dataset": self.run.config.dataset.name,
            "class_names": self.run.class_names,
            "image_shape": list(self.run.image_shape),
            "test_accuracy": record.get("test_accuracy"),
            "parameters": int(self.model.count_params()),
        }
