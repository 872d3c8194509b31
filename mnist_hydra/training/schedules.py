"""Learning-rate schedules, one per `schedule` config; the optimizer's learning_rate is the peak.

Each `schedule/*.yaml` names one of these functions by `_target_`; the training task
completes it with the peak rate and the length of training, and hands the result to the
optimizer as its learning_rate.
"""

import keras


def constant(learning_rate: float, steps_per_epoch: int, epochs: int) -> float:
    return learning_rate


def cosine(
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float,
    start_ratio: float,
    final_ratio: float,
):
    """Linear warm-up from start_ratio x the peak, then cosine decay to final_ratio x the peak."""
    total_steps = steps_per_epoch * epochs
    warmup_steps = min(round(warmup_epochs * steps_per_epoch), total_steps - 1)
    if warmup_steps <= 0:
        return keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=total_steps, alpha=final_ratio
        )
    return keras.optimizers.schedules.CosineDecay(
        learning_rate * start_ratio,
        decay_steps=total_steps - warmup_steps,
        alpha=final_ratio,
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )
