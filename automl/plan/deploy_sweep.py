"""`automl run --stage deploy --checkpoint CKPT`: a sweep with no training (issue 13 §4), planned before anything runs.

For one fixed checkpoint it searches what can change at deploy time and scores every trial on the deployed model
(automl/tune/deploy_trial.py -> automl/tune/deploy_score.py): the FFS iterations x resolution x latency table,
built on the user's own validation data, with the Pareto front of every multi-objective sweep.

The deploy search space (automl/plan/deploy_space.py, TAO's schema dialect, so ``--search-space FILE`` in the usual
YAML format can narrow or change it; its parameters are named ``deploy.*``):

* ``deploy.valid_iters``: the GRU iterations baked into the exported graph: 1, 2, 4, 8 and the model's own
  ``model.valid_iters``;
* ``deploy.scale``: the input resolution as a factor of the validation images' size (0.5, 0.75, 1.0), each side
  rounded to a multiple of 32 (at least 32), so the aspect is kept as far as 32-px steps allow;
* ``deploy.precision``: fp32, or int8 (ONNX Runtime static QDQ, stereo/deploy/quantize.py ``int8_graph``,
  calibrated on the validation pairs). fp16 is not offered: ONNX Runtime's CPU provider runs no fp16 graph
  faster than fp32 and our export writes fp32 only.

Defaults: objectives deploy/epe:min and deploy/latency_ms:min (the front is in every record), no scheduler (a
deploy trial is one measurement: nothing to stop early), 6 trials, TPE. Refused (exit 2, one line, before
anything runs): no ``--checkpoint``, a checkpoint that is missing or does not fit the skill's model, and options
that only mean something for training (``--score-on train``, an early-stopping scheduler, ``--then deploy``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

from automl.errors import LaunchError
from automl.plan.deploy_space import deploy_space

STAGES = ("train", "deploy")
DEFAULT_OBJECTIVES = ("deploy/epe:min", "deploy/latency_ms:min")
#: options a deploy-only sweep refuses: (argparse dest, value that is fine, why)
TRAIN_ONLY = (("score_on", (None, "deploy"), "--score-on {v}: a deploy-only sweep is always scored on the "
               "deployed model and trains nothing; drop --score-on"),
              ("scheduler", ("auto", "none", "fifo"), "--scheduler {v} stops trials early at a validation, and a "
               "deploy trial is one measurement with no validation to stop at; drop it (deploy sweeps run none)"),
              ("then", (None,), "--then {v} hands a trained sweep's best checkpoint to the flow; a deploy-only "
               "sweep already deploys its checkpoint: drop --then"),
              ("keep_dead_params", (False,), "--keep-dead-params judges training parameters; drop it"))


def refuse_train_options(args: Any) -> None:
    """Options that only mean something for training: one line each, exit 2 (LaunchError)."""
    if not getattr(args, "checkpoint", None):
        raise LaunchError("--stage deploy sweeps one trained checkpoint: add --checkpoint <model .pth/.safetensors>")
    for dest, fine, why in TRAIN_ONLY:
        value = getattr(args, dest, None)
        if value not in fine:
            raise LaunchError(why.format(v=value))


def check_checkpoint(checkpoint: str, raw: Dict[str, Any], skill_name: str) -> str:
    """The checkpoint's resolved path; refused when it is missing or does not load into the skill's model."""
    path = Path(checkpoint).expanduser().resolve()
    if not path.is_file():
        raise LaunchError(f"--checkpoint {checkpoint}: file not found; pass a trained checkpoint of the {skill_name} "
                          "model (e.g. <train results>/train/dn_model_best.safetensors)")
    from stereo.config.load import load_spec
    from stereo.errors import StereoError
    from stereo.models.registry import build_model
    from stereo.training.weights import load_weights

    export = {"checkpoint": str(path), "onnx_file": "m.onnx"}  # only the model section is read here
    model_cfg = load_spec({"model": raw.get("model") or {}, "export": export}, action="export").model
    try:
        load_weights(build_model(model_cfg), path, model_type=model_cfg.model_type, what="--checkpoint")
    except StereoError as exc:
        text = (str(exc).strip().splitlines() or ["?"])[0]
        raise LaunchError(f"--checkpoint {checkpoint} does not fit the {skill_name} skill's model "
                          f"({model_cfg.model_type}): {text}") from None
    return str(path)


def _objectives(search: Any) -> List[Any]:
    from automl.plan import objectives as goals

    given = list(search.objectives) or ([] if search.metric else list(DEFAULT_OBJECTIVES))
    chosen = goals.resolve_objectives(given, search.metric, search.mode, "deploy/epe", "min", True)
    bad = [o.name for o in chosen if not o.name.startswith("deploy/")]
    if bad:
        raise LaunchError(f"objective {bad[0]}: a deploy-only sweep trains nothing, so only deploy/* metrics exist "
                          "(deploy/epe, deploy/latency_ms, deploy/peak_mem_mb, deploy/drift_px)")
    return chosen


def build_deploy_plan(search: Any, tune: Any, where: Any, checkpoint: str) -> Any:
    """The LaunchPlan of a deploy-only sweep (raises LaunchError, exit 2, on bad input; nothing runs here)."""
    import time

    from automl.plan.deploy_step import deploy_shape
    from automl.plan.launch import LaunchPlan, _base_spec, _split_output
    from automl.plan.skills import expand_shorthand, find_skill, load_skill
    from automl.plan.objectives import parse_constraint
    from automl.policy.decision import PolicyDecision
    from automl.space.schema import SearchSpaceError
    from stereo.tracking import check_tracking_uri, default_tracking_uri

    skill = load_skill(search.skill_dir) if search.skill_dir else find_skill(search.skill)
    expanded, output = _split_output(expand_shorthand(skill, search.overrides), where.output)
    run_dir = Path(output or Path("automl_runs") / f"{skill.path.name}-deploy-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = run_dir.expanduser().resolve()
    source, raw, overridden, missing = _base_spec(skill, search.spec, expanded)
    if missing:
        raise LaunchError(missing)
    if isinstance(raw.get("dataset"), dict):  # nothing trains: the template's training data may stay unfilled
        raw["dataset"].pop("train_dataset", None)
    raw.pop("train", None)  # likewise its training section (e.g. FFS's <bp2_ckpt_path> pretrained weights)
    problems = _spec_problems({**raw, "results_dir": str(run_dir)}, checkpoint)
    ckpt = check_checkpoint(checkpoint, raw, skill.name)
    val_hw = _val_size(raw)
    chosen = _objectives(search)
    uri = check_tracking_uri(where.tracking_uri) if where.tracking_uri else default_tracking_uri(run_dir)
    reasons = (f"--stage deploy: no training; each trial exports {Path(ckpt).name} at its deploy knobs and scores "
               "it deployed",)
    plan = LaunchPlan(skill_name=skill.name, skill_dir=str(skill.path), decision=PolicyDecision("sweep", "on", reasons),
                      spec_source=source, base_spec=raw, overrides=expanded, run_dir=str(run_dir), tracking_uri=uri,
                      experiment=where.experiment, spec_problems=problems, algorithm=tune.algorithm, scheduler="none",
                      grid_points=int(tune.grid_points), seed=int(tune.seed), num_samples=int(tune.num_samples),
                      max_concurrent=int(tune.max_concurrent or 1), time_budget_s=tune.time_budget_s,
                      max_failures=int(tune.max_failures), cpus_per_trial=float(where.cpus_per_trial),
                      gpus_per_trial=float(where.gpus_per_trial or 0.0), ray_address=where.ray_address,
                      score_on="deploy", stage="deploy", max_t=1)
    plan.fixed = {n: v for n, v in overridden.items() if n.startswith("deploy.")}
    plan.metric, plan.mode = chosen[0].name, chosen[0].mode
    plan.objectives = [[o.name, o.mode] for o in chosen]
    plan.constraints = [[c.name, c.op, c.bound] for c in (parse_constraint(c, True) for c in search.constraints)]
    step = deploy_shape(plan)  # ONNX Runtime present, the model exportable at the validation size
    model_iters = int((raw.get("model") or {}).get("valid_iters") or 1)
    plan.deploy = {**step, "stage": "deploy", "checkpoint": ckpt, "val_height": val_hw[0], "val_width": val_hw[1],
                   "model_iters": model_iters, "calibration_dir": _calibration_dir(raw), "hold": True,
                   "monitor": plan.metric, "monitor_mode": plan.mode}
    if search.search_space:
        path = Path(search.search_space)
        if not path.is_file():
            raise LaunchError(f"--search-space {search.search_space}: file not found; a deploy-only sweep takes a "
                              "YAML path whose parameters are deploy.valid_iters, deploy.scale, deploy.precision")
        plan.search_space_file = str(path.resolve())
    try:
        space = deploy_space(plan)
    except SearchSpaceError as exc:
        raise LaunchError(str(exc)) from None
    plan.space = space.to_dict()
    plan.objective_notes = ["--stage deploy: no scheduler (a deploy trial is one measurement, nothing to stop early)"]
    return plan


def _spec_problems(raw: Dict[str, Any], checkpoint: str) -> List[str]:
    """The spec checked as the deploy evaluate action reads it (the validation set as its test set)."""
    from stereo.config.errors import SpecError
    from stereo.config.load import load_spec

    val = ((raw.get("dataset") or {}).get("val_dataset"))
    if not val:
        return ["a deploy-only sweep scores on dataset.val_dataset: set dataset.val_dataset.data_sources[0]."
                "data_file=<annotations> (and dataset_name)"]
    data = {**raw, "dataset": {**raw["dataset"], "test_dataset": val}, "evaluate": {"checkpoint": checkpoint}}
    try:
        load_spec(data, action="evaluate")
    except SpecError as exc:
        return [str(e) for e in exc.errors] or [str(exc)]
    return []


def _val_size(raw: Dict[str, Any]) -> Tuple[int, int]:
    from automl.plan.probe import first_val_size

    try:
        hw = first_val_size(raw)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable file: one line with the key
        raise LaunchError(f"dataset.val_dataset.data_sources[0].data_file: cannot read the first validation image "
                          f"({exc}); fix the path") from None
    if hw is None:
        raise LaunchError("a deploy-only sweep scores on dataset.val_dataset: set dataset.val_dataset.data_sources[0]"
                          ".data_file=<annotations>")
    return int(hw[0]), int(hw[1])


def _calibration_dir(raw: Dict[str, Any]) -> str:
    """Where int8 finds its calibration pairs: the folder of the validation annotation file."""
    source = raw["dataset"]["val_dataset"]["data_sources"][0]
    return str(Path(source["data_file"]).expanduser().resolve().parent)
