"""Training batches for `epochs` epochs as one stream that a restarted run can resume.

Keras iterates a dataset afresh every epoch, and `Dataset.shuffle(seed=...)` draws each epoch's
order from a generator that lives in the process: a run restarted from a backup (after a worker
was killed) would replay epoch 0's order where the interrupted run was in epoch 5, and end
elsewhere than an uninterrupted run. `EpochStream` repeats one epoch's pipeline (shuffle, batch,
per-epoch draws such as PHNS negatives) `epochs` times inside one dataset, so that epoch e's
order and draws are the e-th draws of seeded generators, the same in every process; a run
restored after `step` optimizer steps skips `step` batches and continues exactly where an
uninterrupted run would (`dataset(epochs, start_step=step)`, fitted with `steps_per_epoch`).
Skipping replays the input pipeline for the skipped batches (not the model), which costs about
one pass of the pipeline per finished epoch.

Example:
  >>> examples = tf.data.Dataset.from_tensor_slices((tf.ones([10, 1]), tf.zeros([10, 1])))
  >>> model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
  >>> model.compile(tf.keras.optimizers.SGD(0.1), "mse")
  >>> stream = EpochStream(examples, batch_size=4, seed=0)
  >>> dataset = stream.dataset(epochs=2, start_step=int(model.optimizer.iterations))
  >>> _ = model.fit(dataset, epochs=2, steps_per_epoch=stream.steps_per_epoch, verbose=0)
  >>> int(model.optimizer.iterations)  # 2 epochs of 3 batches: a resumed run passes this step.
  6
"""

from typing import Callable, Optional

import tensorflow as tf


class EpochStream:
  """Epochs of shuffled batches laid end to end, resumable at any step.

  Args:
    examples: unbatched training examples (cache it: every epoch reads it again).
    batch_size: examples per batch.
    seed: the shuffle's seed, or None to keep the examples' order (time-ordered training).
    transform: optional function batches -> batches applied to each epoch's batches, e.g. PHNS
      negatives (its own random draws must be seeded and re-drawn per iteration, as
      `HardNegativeSampler.add_negatives` does, to follow the epochs too).
    drop_remainder: drop each epoch's last, smaller batch.
    shuffle_buffer: elements in the shuffle buffer (>= the number of examples shuffles fully).
    steps_per_epoch: batches in one epoch when known (e.g. a stream rebuilt inside a
      `tf.function`, where the examples cannot be counted eagerly); None counts the examples.

  Attributes:
    steps_per_epoch: batches in one epoch.

  Example:
    >>> stream = EpochStream(tf.data.Dataset.range(10), batch_size=4, seed=0)
    >>> stream.steps_per_epoch
    3
    >>> [len(batch) for batch in stream.dataset(epochs=2, start_step=4)]  # Epoch 2, batch 2 on.
    [4, 2]
  """

  def __init__(self, examples: tf.data.Dataset, batch_size: int, seed: Optional[int],
               transform: Optional[Callable[[tf.data.Dataset], tf.data.Dataset]] = None,
               drop_remainder: bool = False, shuffle_buffer: int = 100_000,
               steps_per_epoch: Optional[int] = None):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    self._examples = examples
    self._batch_size = batch_size
    self._seed = seed
    self._transform = transform
    self._drop_remainder = drop_remainder
    self._shuffle_buffer = shuffle_buffer
    if steps_per_epoch is not None:
      self.steps_per_epoch = steps_per_epoch
      return
    num_examples = int(examples.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))
    self.steps_per_epoch = (num_examples // batch_size if drop_remainder
                            else -(-num_examples // batch_size))
    if self.steps_per_epoch == 0:
      raise ValueError(f"{num_examples} training examples make no batch of {batch_size}.")

  def dataset(self, epochs: int, start_step: int = 0) -> tf.data.Dataset:
    """Epochs 0..`epochs`-1 end to end, from batch `start_step` of the whole stream on.

    Every call builds new seeded generators: two datasets of one stream give the same batches.
    """
    if not 0 <= start_step <= epochs * self.steps_per_epoch:
      raise ValueError(f"start_step must be in [0, {epochs * self.steps_per_epoch}] for "
                       f"{epochs} epochs of {self.steps_per_epoch} steps, got {start_step}.")
    examples = self._examples
    if self._seed is not None:
      examples = examples.shuffle(self._shuffle_buffer, seed=self._seed,
                                  reshuffle_each_iteration=True)
    batches = examples.batch(self._batch_size, drop_remainder=self._drop_remainder)
    if self._transform is not None:
      batches = self._transform(batches)
    return batches.repeat(epochs).skip(start_step).prefetch(tf.data.AUTOTUNE)
