"""The training images as one prepared tf.data pipeline, and their random augmentation.

The arrays are already cast and scaled (data.to_model_inputs). They go into TensorFlow
once; every epoch then shuffles indices, gathers batches, optionally shifts and rotates
them, and prefetches the next batch while a step runs. The pipeline repeats, and Keras
takes `steps_per_epoch` batches from it per epoch: one iterator for the whole run, where
`fit(x, y)` builds a new one every epoch and at times sits idle while the old one stops.
"""

import math

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig


def training_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: DictConfig
) -> tuple[tf.data.Dataset, int]:
    """An endless, shuffled stream of batches, and how many of them make one epoch."""
    images, labels = tf.constant(x), tf.constant(y)
    count = len(x)
    batches = (
        tf.data.Dataset.range(count)
        .shuffle(count, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
    )
    if augment.shift or augment.rotation:
        # One random seed per batch, from a seeded stream: the same run gets the same images.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda batch, batch_seed: (
                augmented(batch[0], batch_seed, augment.shift, augment.rotation),
                batch[1],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return batches.repeat().prefetch(tf.data.AUTOTUNE), math.ceil(count / batch_size)


def evaluation_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def prediction_batches(x: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Images for `model.predict`, batched. Not the array itself: from an array Keras builds a
    pipeline that TensorFlow re-reads under op determinism (a training run), logging "E0000 ...
    NodeDef mentions attribute use_unbounded_threadpool" (harmless, but it reads as a failure)."""
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def augmented(images: tf.Tensor, seed: tf.Tensor, shift: float, rotation: float) -> tf.Tensor:
    """Each image moved by up to `shift` of its size and turned by up to `rotation` degrees."""
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    seed = tf.cast(seed, tf.int64)
    angles = tf.random.stateless_uniform([count], seed, -1.0, 1.0) * (rotation * math.pi / 180)
    dx = tf.random.stateless_uniform([count], seed + 1, -1.0, 1.0) * (shift * width)
    dy = tf.random.stateless_uniform([count], seed + 2, -1.0, 1.0) * (shift * height)
    return transformed(images, angles, dx, dy)


def transformed(images: tf.Tensor, angles: tf.Tensor, dx: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """Rotate each image by its angle (radians, about the centre) and move it by (dx, dy) pixels.

    Pixels from outside the image are black (0), like MNIST's background.
    """
    height, width = images.shape[1], images.shape[2]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = tf.cos(angles), tf.sin(angles)
    # The transform maps each output pixel back to where it comes from in the input:
    # input = R(-angle) (output - centre - shift) + centre.
    ox, oy = cx + dx, cy + dy
    zeros = tf.zeros_like(angles)
    transforms = tf.stack(
        [cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy, zeros, zeros], axis=1
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(transforms, tf.float32),
        output_shape=[height, width],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
