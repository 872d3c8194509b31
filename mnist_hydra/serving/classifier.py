"""One trained run's model (or a sweep's, as one ensemble), loaded once, answering the images
of concurrent requests together.

An image is prepared by its run's dataset, with the code `predict` uses (MNIST's digits:
inverted if dark on light, cropped, fitted into 20x20, centred by mass), so that the page,
the API and the command line always agree. Requests prepare their images in parallel; one
thread then runs the model on whatever images are waiting, as one batch (docs/performance.md,
Serving, has the measurement behind this: a model call on a batch of 20 costs a fifth per
image). An ensemble's answer is the mean of its members' softmax outputs, as `evaluate` and
`predict` give it.
"""

import io
import json
import queue
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from mnist_hydra.data.images import MAX_PIXELS, read_image
from mnist_hydra.inference.loading import DEFAULT_MAX_PARAMETERS, open_ensemble

MAX_BATCH = 64  # images per model call at most


class Classifier:
    def __init__(self, ckpt_path, trust_run_code: bool = False, max_parameters: int = DEFAULT_MAX_PARAMETERS):
        # safe_mode: a model file that would run code is refused
        self.members = open_ensemble(ckpt_path, trust_run_code, max_parameters)
        self.source = Path(str(ckpt_path)).expanduser()  # the run's folder or model file, or the sweep's
        self.run, self.dataset = self.members[0], self.members[0].dataset  # all read images alike
        for run in self.members:  # traced now rather than on the first requests (then any batch size)
            for size in (1, 2):
                run.model.predict_on_batch(np.zeros((size, *self.run.image_shape), np.float32))
        self._waiting: queue.Queue = queue.Queue()
        threading.Thread(target=self._answer_batches, name="model", daemon=True).start()

    def _answer_batches(self) -> None:
        """The one thread that calls the model: each call takes every image waiting."""
        while True:
            batch = [self._waiting.get()]
            while len(batch) < MAX_BATCH and not self._waiting.empty():
                batch.append(self._waiting.get())
            try:
                images = np.stack([image for image, _ in batch])
                outputs = np.mean(
                    [np.asarray(run.model.predict_on_batch(images)) for run in self.members], axis=0
                )
            except Exception as error:  # each waiting request gets the error, the thread goes on
                for _, answer in batch:
                    answer.set_exception(error)
                continue
            for (_, answer), output in zip(batch, outputs):
                answer.set_result(output)

    def classify(self, data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> dict:
        """The predicted class, every class's probability, and the image the model saw.

        Raises an ImageError (NotAnImage, ImageTooLarge, BlankImage) for an unusable image."""
        prepared = self.dataset.prepare(io.BytesIO(data), name, max_pixels)
        answer: Future = Future()
        self._waiting.put((prepared, answer))
        probabilities = answer.result()
        best = int(np.argmax(probabilities))
        seen = prepared[..., 0] if prepared.shape[-1] == 1 else prepared  # (h, w) gray or (h, w, 3)
        return {
            "predicted": self.run.class_names[best],
            "index": best,
            "probabilities": [round(float(p), 6) for p in probabilities],
            "class_names": self.run.class_names,
            "image": np.round(seen, 4).tolist(),
        }

    def views(self, data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> tuple:
        """The image as the model reads it, and as it was sent (full size, in the dataset's
        channels): what a correction keeps (serving/collect.py)."""
        seen = self.dataset.prepare(io.BytesIO(data), name, max_pixels)
        channels = self.run.image_shape[-1]
        return seen, read_image(io.BytesIO(data), name, 1 if channels == 1 else 3, max_pixels)

    def describe(self) -> dict:
        """What the page shows of the run: its name, dataset, classes and test accuracy (an
        ensemble's: null, since only evaluate scores members together; each member's is listed)."""
        members = [
            {
                "run": str(run.folder),
                "model_file": str(run.model_path),
                "test_accuracy": recorded_test_accuracy(run),
            }
            for run in self.members
        ]
        return {
            "run": str(self.run.folder) if len(members) == 1 else str(self.source),
            "model_file": members[0]["model_file"] if len(members) == 1 else None,
            "dataset": self.run.config.dataset_name,
            "class_names": self.run.class_names,
            "image_shape": list(self.run.image_shape),
            "test_accuracy": members[0]["test_accuracy"] if len(members) == 1 else None,
            "parameters": sum(int(run.model.count_params()) for run in self.members),
            "members": members,
        }


def recorded_test_accuracy(run) -> float | None:
    """The test accuracy the run recorded in its metrics.json, if it has one."""
    try:
        return json.loads((run.folder / "metrics.json").read_text()).get("test_accuracy")
    except (OSError, ValueError):  # a model file without its run's record
        return None
