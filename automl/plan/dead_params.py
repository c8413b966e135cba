"""Dead parameters: searched keys that cannot change this run, found before anything starts.

A key is *dead* when no value it may take changes what the trials train, given the base spec and the
planned run (automl/plan/trial_shape.py). Searching it wastes trials and makes importance plots lie (0.00
for a key that was never read). Rules, each with the reason the review prints:

- the LR schedule against the planned steps T: MultiStepLR milestones (``lr_steps``) all at or beyond
  the last step -> ``lr_decay`` is never applied (the TAO FFS template: milestone 1000, one short
  epoch); StepLR with ``lr_step_size`` >= T likewise; a scheduler that never reads a key
  (``lr_decay``/``lr_steps`` outside MultiStepLR/StepLR, ``lr_step_size`` outside StepLR, ``min_lr``
  outside CosineAnnealingLR); ``momentum`` under AdamW;
- keys the train action never reads: the test/inference splits and the evaluate/inference/export/
  TensorRT sections, augmentation of any split but training (validation data is never augmented), the
  augmentation fields accepted only for TAO compatibility, ``h_flip_prob`` while ``do_flip`` is false.

A rule that depends on another searched key (the scheduler, the run length) is not applied: the key
may be live for some of its values. ``warmup_steps`` longer than the run is not dead (it scales every
step's lr) but is reported. Pure functions: no torch, Ray or MLflow.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

_NOT_READ_BY_TRAIN = ("dataset.test_dataset.", "dataset.infer_dataset.", "dataset.quant_calibration_dataset.",
                      "evaluate.", "inference.", "export.", "gen_trt_engine.", "wandb.")
_TAO_ONLY_AUG = {"gamma": "accepted for TAO compatibility and never applied (as in TAO)",
                 "v_flip_prob": "vertical flips are never applied (they break rectification)",
                 "hshift_prob": "accepted for TAO compatibility and never applied (as in TAO)",
                 "input_mean": "the networks normalise with ImageNet statistics internally; never read",
                 "input_std": "the networks normalise with ImageNet statistics internally; never read"}
_MONO_ONLY = ("dataset.min_depth", "dataset.max_depth", "dataset.normalize_depth", "train.inference_tile",
              "train.tile_wtype", "train.tile_min_overlap")
_RUN_LENGTH = ("train.num_epochs", "train.max_steps", "dataset.train_dataset.batch_size", "train.num_gpus",
               "train.num_nodes")
_SCHEDULER_KEYS = {"train.optim.lr_decay": ("MultiStepLR", "StepLR"), "train.optim.lr_steps": ("MultiStepLR",),
                   "train.optim.lr_step_size": ("StepLR",), "train.optim.min_lr": ("CosineAnnealingLR",)}


def _upper(dist: Mapping[str, Any]) -> Optional[float]:
    if "high" in dist:
        return dist["high"]
    choices = [c for c in dist.get("choices", ()) if isinstance(c, (int, float))]
    return max(choices) if choices else None


def _lower(dist: Mapping[str, Any]) -> Optional[float]:
    if "low" in dist:
        return dist["low"]
    choices = [c for c in dist.get("choices", ()) if isinstance(c, (int, float))]
    return min(choices) if choices else None


def check_dead(spec: Any, total_steps: int, searched: Mapping[str, Mapping[str, Any]]
               ) -> Tuple[Dict[str, str], Dict[str, str]]:
    """({dead key: why}, {live key with a caveat: the caveat}) for the `searched` parameters (name ->
    SearchSpace.to_dict() distribution) of a run of `spec` lasting `total_steps` optimizer steps."""
    dead: Dict[str, str] = {}
    caveats: Dict[str, str] = {}
    names = set(searched)
    for name in searched:
        why = _never_read(name, spec, names)
        if why:
            dead[name] = why
    if names & set(_RUN_LENGTH):
        length = ", ".join(sorted(names & set(_RUN_LENGTH)))
        for name in names & (set(_SCHEDULER_KEYS) | {"train.optim.warmup_steps"}):
            caveats.setdefault(name, f"not judged against the run length: {length} is searched too")
        return dead, caveats
    for name in names & (set(_SCHEDULER_KEYS) | {"train.optim.warmup_steps"}):
        if name in dead:
            continue
        why, caveat = _schedule_rule(name, spec.train.optim, int(total_steps), searched, names)
        if why:
            dead[name] = why
        elif caveat:
            caveats[name] = caveat
    return dead, caveats


def _never_read(name: str, spec: Any, searched: set) -> Optional[str]:
    if name.startswith(_NOT_READ_BY_TRAIN):
        section = ".".join(name.split(".")[:2]) if name.startswith("dataset.") else name.split(".")[0]
        return f"the train action never reads {section}"
    if name in _MONO_ONLY:
        return "accepted for TAO compatibility (monocular depth only); stereo training never reads it"
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "dataset" and parts[2] == "augmentation":
        split, field_name = parts[1], parts[3]
        if split != "train_dataset":
            return f"only the training split is augmented; {split.replace('_dataset', '')} data never is"
        if field_name in _TAO_ONLY_AUG:
            return _TAO_ONLY_AUG[field_name]
        if (field_name == "h_flip_prob" and not spec.dataset.train_dataset.augmentation.do_flip
                and "dataset.train_dataset.augmentation.do_flip" not in searched):
            return "dataset.train_dataset.augmentation.do_flip is false, so no flip is ever drawn"
    if (name == "train.optim.momentum" and str(spec.train.optim.optimizer) == "AdamW"
            and "train.optim.optimizer" not in searched):
        return "train.optim.optimizer is AdamW, whose betas are fixed; only SGD reads momentum"
    return None


def _schedule_rule(name: str, optim: Any, total: int, searched: Mapping[str, Mapping[str, Any]],
                   names: set) -> Tuple[Optional[str], Optional[str]]:
    from stereo.training.schedulers import canonical_scheduler_name

    if "train.optim.lr_scheduler" in names:
        return None, "not judged: train.optim.lr_scheduler is searched too"
    scheduler = canonical_scheduler_name(optim.lr_scheduler)
    last = total - 1  # optimizer steps are numbered 0..T-1
    if name == "train.optim.warmup_steps":
        low = _lower(searched[name])
        if low is not None and low >= total:
            return None, (f"every warm-up ({low:g}+ steps) outlasts the run ({total} steps): the lr never reaches "
                          "train.optim.lr, so lr and warm-up trade off")
        return None, None
    readers = _SCHEDULER_KEYS[name]
    if scheduler not in readers:
        return (f"train.optim.lr_scheduler is {scheduler}, which never reads it (only {' and '.join(readers)} "
                "do)"), None
    if name in ("train.optim.lr_decay", "train.optim.lr_steps") and scheduler == "MultiStepLR":
        if name == "train.optim.lr_decay" and "train.optim.lr_steps" not in names:
            milestones = sorted(int(m) for m in (optim.lr_steps or ()))
            if not any(m <= last for m in milestones):
                hint = max(1, total // 2)
                return (f"MultiStepLR milestones train.optim.lr_steps={milestones} all lie at or beyond this run's "
                        f"last optimizer step ({last}; {total} steps planned), so the lr is never multiplied by "
                        f"lr_decay; to search it, set train.optim.lr_steps below {total} (e.g. [{hint}]) or train "
                        "longer"), None
        if name == "train.optim.lr_steps" and "train.optim.lr_decay" not in names and float(optim.lr_decay) == 1.0:
            return "train.optim.lr_decay is 1.0: a milestone multiplies the lr by 1", None
        return None, None
    if scheduler == "StepLR":
        period = int(optim.lr_step_size)
        if name == "train.optim.lr_decay" and "train.optim.lr_step_size" not in names and period > last:
            return (f"StepLR period train.optim.lr_step_size={optim.lr_step_size} is longer than this run "
                    f"({total} optimizer steps), so the lr is never multiplied by lr_decay; set "
                    f"train.optim.lr_step_size below {total} to search it"), None
        if name == "train.optim.lr_step_size":
            low = _lower(searched[name])
            if low is not None and low > last:
                return (f"every StepLR period searched ({low:g}+ steps) is longer than this run ({total} optimizer "
                        "steps), so no value changes the lr"), None
    return None, None


def describe(dead: Mapping[str, str], caveats: Mapping[str, str], names: Sequence[str], kept: bool) -> list:
    """One review line per searched key: live (with any caveat) or dead (with the reason)."""
    lines = []
    for name in names:
        if name in dead:
            what = "searched anyway (--keep-dead-params)" if kept else "left out of the search"
            lines.append(f"{name}: DEAD, {what}: {dead[name]}")
        else:
            lines.append(f"{name}: live" + (f" ({caveats[name]})" if name in caveats else ""))
    return lines


def mlflow_tags(dead: Mapping[str, str], kept: bool) -> Dict[str, str]:
    """Tags of the sweep's parent run: which keys were dead, why, and whether they were searched anyway."""
    import json

    if not dead:
        return {}
    tags = {"automl.dead_params": json.dumps({"keys": sorted(dead), "searched_anyway": bool(kept)})}
    tags.update({f"automl.dead.{name}": why[:4000] for name, why in dead.items()})
    return tags
