"""`depth_net init-checkpoint`: a randomly initialised checkpoint of any registered model, for dry runs.

    depth_net init-checkpoint preset=ffs_bp2 output=/tmp/ffs_bp2_random.pth
    depth_net init-checkpoint model_spec=spec_template_train.yaml output=/tmp/bp2.pth seed=3

Writes the published layout — `<name>.safetensors` + `<name>.json` (model config, SHA-256) and the
TAO-style `<name>.pth` (stereo.checkpoints.tao_pth) — so every action, the spec checks that compare
`model.*` with a checkpoint, and TAO users' `torch.load(..., weights_only=True)` treat it exactly like the
real weights: the bp2 preset has every tensor of the published FFS bp2 checkpoint, with PyTorch's default
initialisation instead of the trained values. Runs like every action (status.json, experiment.yaml,
MLflow run) with `<results_dir>/init-checkpoint/` (default: the output's folder).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stereo.actions.runner import EXIT_BAD_INPUT, ActionContext, ActionResult, require_spec, run_spec_action
from stereo.errors import ActionError
from stereo.errors import BadInputError
from stereo.config.init_checkpoint import InitCheckpointConfig

ACTION = "init-checkpoint"
_SUFFIXES = (".pth", ".safetensors", ".json")


@dataclass
class InitCheckpointResult:
    status: str
    files: list[str]
    model_type: str
    num_parameters: int
    results_dir: str
    kpi: dict[str, float] = field(default_factory=dict)
    message: str = ""


def output_stem(output: str) -> Path:
    """'x.pth' / 'x.safetensors' / 'x' -> Path('x') (absolute)."""
    path = Path(output).expanduser().resolve()
    return path.with_suffix("") if path.suffix in _SUFFIXES else path


def init_checkpoint(cfg: InitCheckpointConfig, *, tracker: Any = None, parent_run_id: str | None = None,
                    experiment: str = "depth_net", run_name: str | None = None) -> InitCheckpointResult:
    """Build `cfg.preset` (or `cfg.model_spec`'s model) with seed `cfg.seed` and write it to `cfg.output`."""
    require_spec(cfg, InitCheckpointConfig, "init_checkpoint")
    if not cfg.output:
        raise ActionError(ACTION, "bad input", "output is empty; set output=<path>.pth (the .safetensors + .json "
                          "pair is written beside it)", EXIT_BAD_INPUT)
    stem = output_stem(cfg.output)
    _check_inputs(cfg, stem)  # a bad preset or an existing output: exit 2 before any folder or store is made
    spec = dataclasses.replace(cfg, results_dir=cfg.results_dir or str(stem.parent))

    def summarize(res: InitCheckpointResult) -> ActionResult:
        return ActionResult("SUCCESS", res.kpi, res.message, [Path(f) for f in res.files])

    return run_spec_action(ACTION, spec, lambda ctx: _write(spec, stem, ctx), summarize, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name)


def model_config(cfg: InitCheckpointConfig):
    """The ModelConfig to build: the model block of `model_spec` when set, else the preset's."""
    from stereo.models import preset_config

    if cfg.model_spec:
        from stereo.config.load import load_spec

        return load_spec(cfg.model_spec).model
    try:
        return preset_config(cfg.preset)
    except KeyError as exc:
        raise BadInputError(f"preset={cfg.preset!r}: {exc.args[0]}") from None


def _outputs(stem: Path) -> list[Path]:
    return [Path(f"{stem}{suffix}") for suffix in (".safetensors", ".json", ".pth")]


def _check_inputs(cfg: InitCheckpointConfig, stem: Path) -> None:
    existing = [str(f) for f in _outputs(stem) if f.exists()]
    if existing and not cfg.overwrite:
        raise BadInputError(f"output={cfg.output!r}: {', '.join(existing)} already exist; set overwrite=true to "
                            "replace them or choose another output")
    if cfg.model_spec:
        if not Path(cfg.model_spec).expanduser().is_file():
            raise BadInputError(f"model_spec={cfg.model_spec!r}: no such file; give a depth_net spec whose model "
                                "block to use, or drop model_spec and set preset=<name>")
    else:
        model_config(cfg)  # an unknown preset: the names and the nearest one


def _write(cfg: InitCheckpointConfig, stem: Path, ctx: ActionContext) -> InitCheckpointResult:
    import torch

    from stereo.models import build_model
    from stereo.checkpoints import save_checkpoint
    from stereo.checkpoints.tao_pth import save_pth
    from stereo.models.ffs.dead_keys import legacy_tensors

    files = _outputs(stem)
    model_cfg = model_config(cfg)
    ctx.status.write("RUNNING", f"Building {model_cfg.model_type} with seed {cfg.seed}.")
    torch.manual_seed(int(cfg.seed))
    model = build_model(model_cfg)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    config = dataclasses.asdict(model_cfg)
    meta = {"initialisation": "random (PyTorch module defaults)", "seed": int(cfg.seed),
            "source": cfg.model_spec or f"preset {cfg.preset}", "epoch": 0, "step": 0}
    save_checkpoint(files[0], state, config=config, meta=meta)
    save_pth(files[2], state, config=config, meta=meta, legacy=legacy_tensors(model))
    n = sum(v.numel() for v in model.parameters())
    ctx.log_artifact(files[1], "checkpoint")
    message = (f"Wrote a randomly initialised {model_cfg.model_type} ({n:,} parameters, seed {cfg.seed}) to "
               f"{files[2]} and {files[0].name} + {files[1].name}.")
    return InitCheckpointResult("RUNNING", [str(f) for f in files], model_cfg.model_type, n, str(ctx.dir),
                                {"num_parameters": float(n)}, message)
