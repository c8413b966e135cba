"""``--algorithm nsga2``: Optuna's NSGAIISampler, made picklable. Optuna 5's sampler holds a ``threading.Lock``
(its generation cache), which cannot be pickled; Ray pickles the searcher with its sampler when it starts
the experiment (``cannot pickle '_thread.lock' object``). The lock is dropped from the pickled state and a
fresh one made on load; nothing else changes. Imported only when that sampler is asked for (Optuna stays
unimported by ``automl --help`` and ``--dry-run``)."""
from __future__ import annotations

import threading

from optuna.samplers import NSGAIISampler


class PicklableNSGAIISampler(NSGAIISampler):
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
