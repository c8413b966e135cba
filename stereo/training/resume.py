"""TAO checkpoint names in `<results_dir>/train/`, auto-resume, and RNG state for exact resume.

Layout written by :class:`stereo.training.tao_checkpoint.TaoCheckpoint` (TAO: `model_epoch_{EEE:03d}_step_
{SSSSS:05d}` plus `dn_model_latest`, `dn_model_best`):

    model_epoch_000_step_00010.safetensors  (+ its JSON sidecar)   weights: load anywhere, no pickle
    model_epoch_000_step_00010.ckpt                                Lightning resume state (optimizer, ...)
    dn_model_latest.{safetensors,json,ckpt} -> the newest of the above (relative symlinks)
    dn_model_best.{safetensors,json} -> dn_model_best_epoch_000_step_00008.{safetensors,json}, the best
                                        weights by the monitored metric (val/epe, lowest, by default)

Every file appears atomically (temp + os.replace) in an order that keeps every published name complete
(see tao_checkpoint.py), so after a SIGKILL the folder holds complete files and, at worst, `.*.tmp`
leftovers that :func:`remove_stale_temps` deletes.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "dn_model_latest"
BEST = "dn_model_best"
RESUME_SUFFIX = ".ckpt"
WEIGHTS_SUFFIX = ".safetensors"
_STEM_RE = re.compile(r"^model_epoch_(\d{3,})_step_(\d{5,})$")


def checkpoint_stem(epoch: int, step: int) -> str:
    """'model_epoch_{epoch:03d}_step_{step:05d}' (TAO's ModelCheckpoint filename)."""
    if epoch < 0 or step < 0:
        raise ValueError(f"checkpoint_stem: epoch and step must be >= 0, got epoch={epoch}, step={step}")
    return f"model_epoch_{epoch:03d}_step_{step:05d}"


def parse_stem(stem: str) -> tuple[int, int] | None:
    """(epoch, step) of a TAO checkpoint stem, or None for any other name."""
    m = _STEM_RE.match(stem)
    return (int(m.group(1)), int(m.group(2))) if m else None


def list_resume_checkpoints(train_dir: str | os.PathLike) -> list[Path]:
    """`model_epoch_*_step_*.ckpt` files in `train_dir`, oldest first by (step, epoch)."""
    train_dir = Path(train_dir)
    if not train_dir.is_dir():
        return []
    found = [(parse_stem(p.stem), p) for p in train_dir.glob(f"model_epoch_*_step_*{RESUME_SUFFIX}")]
    return [p for _, p in sorted(((key[1], key[0]), p) for key, p in found if key is not None)]


def find_latest(train_dir: str | os.PathLike) -> Path | None:
    """The resume state to continue from: `dn_model_latest.ckpt` if it resolves, else the newest
    `model_epoch_*_step_*.ckpt` (a crash between writing a checkpoint and moving the link), else None."""
    candidates = list_resume_checkpoints(train_dir)
    link = Path(train_dir) / (LATEST + RESUME_SUFFIX)
    if link.exists() and parse_stem(link.resolve().stem) is not None:
        target = link.resolve()
        if not candidates or _order(target) >= _order(candidates[-1]):
            return target
    return candidates[-1] if candidates else None


def _order(path: Path) -> tuple[int, int]:
    epoch, step = parse_stem(path.stem)
    return step, epoch


def remove_stale_temps(train_dir: str | os.PathLike) -> list[Path]:
    """Delete `.<name>.*.tmp` files a killed writer left behind; returns what was removed."""
    train_dir = Path(train_dir)
    removed = []
    if train_dir.is_dir():
        for p in train_dir.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def resolve_resume_path(explicit: str, train_dir: str | os.PathLike) -> Path | None:
    """`train.resume_training_checkpoint_path` if set (must be a Lightning `.ckpt`), else auto-resume."""
    from stereo.errors import BadInputError

    if explicit:
        path = Path(explicit).expanduser()
        if path.suffix != RESUME_SUFFIX:
            sibling = path.with_suffix(RESUME_SUFFIX)
            if sibling.exists():  # the user pointed at the weights of a checkpoint we wrote
                return sibling
            raise BadInputError(f"train.resume_training_checkpoint_path={explicit!r} is not a resume state: exact "
                             f"resume needs the Lightning '{RESUME_SUFFIX}' file written next to the weights; "
                             "to start from weights only, set train.pretrained_model_path instead.")
        if not path.is_file():
            raise BadInputError(f"train.resume_training_checkpoint_path={explicit!r} does not exist; fix the "
                                    "path or leave it empty to auto-resume from <results_dir>/train.")
        return path
    return find_latest(train_dir)


def check_resume_state(path: str | os.PathLike) -> None:
    """Refuse a resume `.ckpt` that does not load with `torch.load(weights_only=True)`.

    Lightning resumes through `torch.load`, whose weights_only default the environment can turn off
    (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1); our resume states hold only tensors and plain values, so the
    file is checked here with weights_only passed explicitly, which no environment variable overrides,
    and train passes weights_only=True to `Trainer.fit` as well.
    """
    import pickle
    import zipfile

    from stereo.errors import BadInputError

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        first = (str(exc).strip().splitlines() or ["refused"])[0]
        raise BadInputError(f"{path}: the resume state does not load with torch.load(weights_only=True) "
                            f"({first}); only resume states written by depth_net train are accepted; to "
                            "start from its weights instead set train.pretrained_model_path") from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/EOFError/... on damaged files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInputError(f"{path}: the resume state cannot be read ({first}); it is corrupt or truncated, "
                            "delete it to resume from the previous checkpoint") from None
    missing = [k for k in ("state_dict", "loops", "optimizer_states") if not isinstance(state, dict) or k not in state]
    if missing:
        raise BadInputError(f"{path}: not a Lightning resume state (no {missing}); point "
                            "train.resume_training_checkpoint_path at a model_epoch_*.ckpt written by train")


def collect_rng_states() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, stored in the resume checkpoint."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    if not states:
        return
    random.setstate(_as_python_state(states["python"]))
    np.random.set_state(states["numpy"])
    torch.set_rng_state(torch.as_tensor(states["torch"], dtype=torch.uint8))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_python_state(state):
    # A checkpoint round trip may turn the inner tuple into a list; random.setstate needs tuples.
    version, internal, gauss = state
    return version, tuple(internal), gauss


class ResumableSampler(torch.utils.data.Sampler):
    """Wraps the train sampler so a resumed run sees the same data order as an uninterrupted one.

    The wrapped sampler draws a new order from its own generator at the start of each epoch; a fresh
    process would start again from epoch 0's order. `epochs_drawn` counts those draws and is stored in the
    resume checkpoint; after loading, the first `__iter__` replays the draws of the finished epochs and,
    for a checkpoint taken mid-epoch (single process only), skips the items already trained on.
    """

    def __init__(self, inner: torch.utils.data.Sampler):
        self.inner = inner
        self.epochs_drawn = 0
        self._skip_epochs = 0
        self._skip_items = 0

    def __len__(self) -> int:
        return len(self.inner)

    def resume_from(self, epochs_drawn: int, items_done: int = 0) -> None:
        self._skip_epochs, self._skip_items = int(epochs_drawn), int(items_done)

    def __iter__(self):
        for _ in range(self._skip_epochs):
            next(iter(self.inner), None)  # the first item triggers the epoch's draws
        self.epochs_drawn += self._skip_epochs
        skip, self._skip_epochs, self._skip_items = self._skip_items, 0, 0
        started = False
        for i, item in enumerate(self.inner):
            if not started:
                self.epochs_drawn += 1
                started = True
            if i >= skip:
                yield item


def with_resumable_sampler(loader: torch.utils.data.DataLoader) -> torch.utils.data.DataLoader:
    """The same DataLoader with its sampler wrapped in :class:`ResumableSampler`."""
    return with_own_generator(loader, sampler=ResumableSampler(loader.sampler))


def with_own_generator(loader: torch.utils.data.DataLoader,
                       sampler: torch.utils.data.Sampler | None = None) -> torch.utils.data.DataLoader:
    """The same DataLoader drawing its worker base seed from a private generator.

    A plain DataLoader takes one number from the global torch RNG each time an iterator is created. The
    model's dropout draws from that RNG too, and a resumed run creates its iterators at other moments
    than the original run did; with a private generator the global stream is the model's alone, so the
    RNG state restored from the checkpoint reproduces the original dropout masks.
    """
    return torch.utils.data.DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler if sampler is not None else loader.sampler,
        num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
        drop_last=loader.drop_last, worker_init_fn=loader.worker_init_fn, generator=torch.Generator(),
        persistent_workers=loader.persistent_workers if loader.num_workers > 0 else False)
