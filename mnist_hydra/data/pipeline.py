"""The training images as one prepared tf.data pipeline, and their random augmentation.

The images go into TensorFlow once, as the dataset's uint8 pixels (a quarter of the floats'
memory, and no second copy of the training set to make first); every epoch then shuffles
indices, gathers batches, scales them to [0, 1] exactly as data.to_model_inputs does,
optionally shifts and rotates them, and prefetches the next batch while a step runs. The
pipeline repeats, and Keras takes `steps_per_epoch` batches from it per epoch: one iterator
for the whole run, where `fit(x, y)` builds a new one every epoch and at times sits idle
while the old one stops.
"""

import math

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig


def training_batches(
    pixels: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: DictConfig
) -> tuple[tf.data.Dataset, int]:
    """An endless, shuffled stream of batches, and how many of them make one epoch.
    `pixels`: (n, height, width, channels) uint8; `y`: one-hot labels."""
    images, labels = tf.constant(pixels), tf.constant(y)
    count = len(pixels)
    batches = (
        tf.data.Dataset.range(count)
        .shuffle(count, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda index: (scaled(tf.gather(images, index)), tf.gather(labels, index)))
    )
    if any(augment.get(lever, 0) for lever in LEVERS):
        # One random seed per batch, from a seeded stream: the same run gets the same images.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda batch, batch_seed: (
                augmented(batch[0], batch_seed, augment),
                batch[1],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return batches.repeat().prefetch(tf.data.AUTOTUNE), math.ceil(count / batch_size)


def scaled(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 pixels as floats in [0, 1]: the same numbers as data.to_model_inputs gives."""
    return tf.cast(pixels, tf.float32) / 255.0


def evaluation_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def prediction_batches(x: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Images for `model.predict`, batched. Not the array itself: from an array Keras builds a
    pipeline that TensorFlow re-reads under op determinism (a training run), logging "E0000 ...
    NodeDef mentions attribute use_unbounded_threadpool" (harmless, but it reads as a failure)."""
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size).prefetch(tf.data.AUTOTUNE)


LEVERS = ("shift", "rotation", "scale", "elastic", "thickness", "low_resolution")
# The smoothing of elastic distortion's random field, in pixels: Simard, Steinkraus and Platt
# (2003), "Best practices for convolutional neural networks applied to visual document analysis",
# found 4 best on MNIST (less: noise; more: a shift), with a strength (alpha) of 34.
ELASTIC_SIGMA = 4.0


def augmented(images: tf.Tensor, seed: tf.Tensor, augment: DictConfig) -> tf.Tensor:
    """Each image moved by up to `shift` of its size, turned by up to `rotation` degrees and
    scaled by up to `scale` either way; with `elastic`, warped by a smooth random field of that
    strength (the way a hand wobbles); then with `thickness`, a share of the images' strokes
    made thicker or thinner by a pixel; with `low_resolution`, a share seen at 7 to 14 pixels
    and brought back up (a photo or scan at low resolution)."""
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    seed = tf.cast(seed, tf.int64)
    shift, rotation, scale = augment.shift, augment.rotation, augment.get("scale", 0.0)
    angles = tf.random.stateless_uniform([count], seed, -1.0, 1.0) * (rotation * math.pi / 180)
    dx = tf.random.stateless_uniform([count], seed + 1, -1.0, 1.0) * (shift * width)
    dy = tf.random.stateless_uniform([count], seed + 2, -1.0, 1.0) * (shift * height)
    scales = 1.0 + tf.random.stateless_uniform([count], seed + 3, -1.0, 1.0) * scale
    images = transformed(images, angles, dx, dy, scales)
    if augment.get("elastic", 0.0):
        images = elastically_distorted(images, seed + 8, augment.elastic)
    if augment.get("thickness", 0.0):
        images = thickness_changed(images, seed + 4, augment.thickness)
    if augment.get("low_resolution", 0.0):
        images = low_resolution(images, seed + 6, augment.low_resolution)
    return images


def elastically_distorted(images: tf.Tensor, seed: tf.Tensor, alpha: float) -> tf.Tensor:
    """Each image warped by its own random displacement field: uniform noise in [-1, 1] per
    pixel and direction, smoothed by a Gaussian of ELASTIC_SIGMA pixels, times `alpha` (Simard
    et al. 2003). Read back with bilinear interpolation; pixels from outside are black."""
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    noise = tf.random.stateless_uniform([count, height, width, 2], seed, -1.0, 1.0)
    radius = int(3 * ELASTIC_SIGMA)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / ELASTIC_SIGMA) ** 2)
    taps = tf.constant(taps / taps.sum(), tf.float32)
    # A separable blur, one channel (dx, dy) at a time: down the columns, then along the rows.
    down = tf.tile(tf.reshape(taps, [-1, 1, 1, 1]), [1, 1, 2, 1])
    across = tf.tile(tf.reshape(taps, [1, -1, 1, 1]), [1, 1, 2, 1])
    field = tf.nn.depthwise_conv2d(noise, down, [1, 1, 1, 1], "SAME")
    field = tf.nn.depthwise_conv2d(field, across, [1, 1, 1, 1], "SAME") * alpha
    rows, columns = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )
    return sampled(images, columns + field[..., 0], rows + field[..., 1])


def sampled(images: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """images (n, h, w, c) read at the points (x, y), each (n, h, w) in pixels: bilinear
    between the four nearest pixels, 0 for those outside the image."""
    count = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    flat = tf.reshape(images, [count, height * width, channels])
    left, top = tf.floor(x), tf.floor(y)
    result = tf.zeros_like(images)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        column, row = left + dx, top + dy
        weight = (1 - tf.abs(x - column)) * (1 - tf.abs(y - row))
        inside = (column >= 0) & (column <= width - 1) & (row >= 0) & (row <= height - 1)
        index = tf.cast(
            tf.clip_by_value(row, 0, height - 1) * width + tf.clip_by_value(column, 0, width - 1), tf.int32
        )
        values = tf.gather(flat, tf.reshape(index, [count, -1]), batch_dims=1)
        weight = tf.where(inside, weight, 0.0)[..., tf.newaxis]
        result += tf.reshape(values, [count, height, width, channels]) * weight
    return result


def thickness_changed(images: tf.Tensor, seed: tf.Tensor, share: float) -> tf.Tensor:
    """A `share` of the images with strokes a pixel thicker (dilated) or thinner (eroded), half each."""
    count = tf.shape(images)[0]
    pick = tf.random.stateless_uniform([count, 1, 1, 1], seed, 0.0, 1.0)
    # A 2x2 window: one pixel more or less across a stroke (3x3 would take two off, and a
    # thin stroke would vanish).
    thicker = tf.nn.max_pool2d(images, 2, 1, "SAME")
    thinner = -tf.nn.max_pool2d(-images, 2, 1, "SAME")
    images = tf.where(pick < share / 2, thicker, images)
    return tf.where((pick >= share / 2) & (pick < share), thinner, images)


def low_resolution(images: tf.Tensor, seed: tf.Tensor, share: float) -> tf.Tensor:
    """A `share` of the images averaged down to 7-14 pixels a side (one size per batch) and back up."""
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    side = tf.random.stateless_uniform([], seed, 7, 15, dtype=tf.int32)
    small = tf.image.resize(images, tf.stack([side, side]), method="area")
    blurred = tf.image.resize(small, [height, width], method="bilinear")
    pick = tf.random.stateless_uniform([count, 1, 1, 1], seed + 1, 0.0, 1.0)
    return tf.where(pick < share, blurred, images)


def transformed(
    images: tf.Tensor, angles: tf.Tensor, dx: tf.Tensor, dy: tf.Tensor, scales: tf.Tensor | None = None
) -> tf.Tensor:
    """Rotate each image by its angle (radians, about the centre), scale it by its factor (about
    the centre) and move it by (dx, dy) pixels.

    Pixels from outside the image are black (0), like MNIST's background.
    """
    height, width = images.shape[1], images.shape[2]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    scales = tf.ones_like(angles) if scales is None else scales
    cos, sin = tf.cos(angles) / scales, tf.sin(angles) / scales
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
