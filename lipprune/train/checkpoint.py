"""Orbax checkpoints of a run: the TrainState plus the run's own progress counter.

The progress counter is separate from ``state.step``: a retraining run that rewinds the learning
rate starts with ``state.step = T - t`` but progress 0, and resumes from its progress.
"""
from __future__ import annotations

import jax
import numpy as np
import orbax.checkpoint as ocp

from lipprune.train import io


class Checkpointer:
  """Saves ``{'state': TrainState, 'progress': int}`` under ``directory/<progress>``."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = io.checkpoint_dir(directory)  # local: absolute; gs://, s3:// as given
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_progress(self) -> int | None:
    return self._manager.latest_step()

  def save(self, progress: int, state, force: bool = True) -> None:
    item = {"state": state, "progress": np.asarray(progress, np.int32)}
    self._manager.save(int(progress), args=ocp.args.StandardSave(item), force=force)
    self._manager.wait_until_finished()

  def restore(self, template_state):
    """Returns ``(progress, state)`` from the latest checkpoint, or ``None`` if there is none.

    ``template_state`` supplies structure, shapes, dtypes and shardings (e.g. the freshly
    initialized state), so the restored arrays land where the template's live.
    """
    step = self._manager.latest_step()
    if step is None:
      return None
    item = {"state": template_state, "progress": np.asarray(0, np.int32)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, item)
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return int(restored["progress"]), restored["state"]

  def close(self) -> None:
    self._manager.close()
