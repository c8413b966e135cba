"""`depth_net flow -e flow.yaml`: TAO's seven-action sequence in one command, each step reading its input from
the step before it (``--parent``, stereo.actions.parent), all under one MLflow flow run.

flow.yaml (paths relative to the file; every key optional but ``spec`` or each step's own ``spec``)::

    results_dir: /results/job1     # each step writes <results_dir>/<step>/; one store <results_dir>/mlflow.db
    spec: experiment.yaml          # the depth_net spec of every step that names none (TAO's templates: one
                                   #   per action, e.g. spec_template_train.yaml, ..._deploy.yaml)
    overrides: [model.valid_iters=8]   # key=value for every step
    checkpoint: ""                 # set: the deploy-only six from this checkpoint (no train)
    steps:                         # per step: spec, overrides (added after the flow's); absent: defaults
      train:            {spec: spec_template_train.yaml, overrides: [train.num_epochs=1]}
      export:           {spec: spec_template_export.yaml}
      deploy_evaluate:  {spec: spec_template_deploy.yaml}

The steps, in order: train, evaluate, inference, export, gen_trt_engine, deploy_inference, deploy_evaluate.
evaluate / inference / export read train's best checkpoint (or ``checkpoint``); gen_trt_engine export's ONNX;
the deploy steps gen_trt_engine's engine — or, without TensorRT and a CUDA GPU, the exported ONNX with ONNX
Runtime (one line says so and gen_trt_engine is skipped). Every step's spec is checked before the first runs
(all problems at once, exit 2; the input a parent step will write is not required yet). A failing step stops
the flow with its exit code and the command that resumes it: a rerun skips the steps whose status.json ends
SUCCESS (delete a step's folder to run it again). The pyt-vs-deploy drift of deploy_evaluate (``drift_*``)
and its ``epe`` (as ``deploy_epe``) are logged on the flow run.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml

from stereo.errors import BadInputError

STEPS = ("train", "evaluate", "inference", "export", "gen_trt_engine", "deploy_inference", "deploy_evaluate")
#: the step each one reads from (deploy steps: gen_trt_engine, else export when no engine is built)
PARENT = {"evaluate": "train", "inference": "train", "export": "train", "gen_trt_engine": "export",
          "deploy_inference": "gen_trt_engine", "deploy_evaluate": "gen_trt_engine"}
FED_KEYS = ("checkpoint", "trt_engine", "onnx_file")
FLOW_KEYS = {"results_dir", "spec", "overrides", "checkpoint", "steps"}


@dataclass
class Step:
    name: str
    spec: Path
    overrides: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        return self.name.replace("deploy_", "")


@dataclass
class FlowPlan:
    file: str
    results_dir: Path
    checkpoint: Optional[Path]
    steps: list[Step]


def _bad(file: str, key: str, why: str, fix: str) -> BadInputError:
    return BadInputError(f"{file}: {key}: {why}; {fix}")


def _overrides(file: str, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise _bad(file, key, f"{value!r} is not a list of key=value strings", "write e.g. [train.num_epochs=1]")
    return list(value)


def load_flow(path: str, overrides: Sequence[str] = ()) -> FlowPlan:
    """Read flow.yaml (+ `key=value` for its top-level keys) into the steps to run; BadInputError on a problem."""
    file = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{file}: cannot be read as YAML ({exc}); pass the flow spec (see depth_net flow "
                            "--help)") from None
    if not isinstance(raw, dict):
        raise _bad(file, "(top)", "is not a mapping", "write the keys results_dir, spec, steps, ...")
    for text in overrides:
        key, sep, value = text.partition("=")
        if not sep or key not in FLOW_KEYS - {"steps"}:
            raise _bad(file, text, "is not a flow override", f"use one of {sorted(FLOW_KEYS - {'steps'})}=...")
        raw[key] = yaml.safe_load(value) if key == "overrides" else value
    unknown = sorted(set(raw) - FLOW_KEYS)
    if unknown:
        raise _bad(file, unknown[0], "is not a flow key", f"use {sorted(FLOW_KEYS)}")
    base = Path(path).expanduser().resolve().parent
    where = lambda p: (base / Path(str(p)).expanduser()).resolve()  # noqa: E731 - absolute stays absolute
    if not raw.get("results_dir"):
        raise _bad(file, "results_dir", "is missing", "set the folder the steps write to")
    checkpoint = where(raw["checkpoint"]) if raw.get("checkpoint") else None
    if checkpoint is not None and not checkpoint.is_file():
        raise _bad(file, "checkpoint", f"{checkpoint} does not exist", "give the checkpoint to deploy")
    common = _overrides(file, "overrides", raw.get("overrides"))
    given = raw.get("steps") or {}
    if not isinstance(given, dict) or set(given) - set(STEPS):
        raise _bad(file, "steps", f"{sorted(set(given) - set(STEPS)) if isinstance(given, dict) else given!r} "
                   "is not a step", f"name steps among {list(STEPS)}")
    steps = []
    for name in STEPS[1:] if checkpoint else STEPS:
        own = given.get(name) or {}
        if not isinstance(own, dict) or set(own) - {"spec", "overrides"}:
            raise _bad(file, f"steps.{name}", f"{own!r} is not {{spec, overrides}}", "write e.g. {spec: x.yaml}")
        spec = own.get("spec") or raw.get("spec")
        if not spec:
            raise _bad(file, f"steps.{name}.spec", "is missing and no flow-level spec is set",
                       "set spec: (for every step) or the step's own")
        if not where(spec).is_file():
            raise _bad(file, f"steps.{name}.spec" if own.get("spec") else "spec", f"{where(spec)} does not exist",
                       "fix the path (relative paths are relative to the flow file)")
        own_overrides = _overrides(file, f"steps.{name}.overrides", own.get("overrides"))
        steps.append(Step(name, where(spec), common + own_overrides))
    return FlowPlan(file, where(raw["results_dir"]), checkpoint, steps)


def _step_argv(plan: FlowPlan, step: Step, engine_built: bool) -> tuple[list[str], list[str]]:
    """(the step's `depth_net` argv, its key=value overrides)."""
    folder = plan.results_dir / step.name
    overrides = [f"results_dir={plan.results_dir}", f"{step.action}.results_dir={folder}"]
    parent = PARENT.get(step.name)
    if parent == "gen_trt_engine" and not engine_built:
        parent = "export"
    if parent == "train" and plan.checkpoint is not None:
        parent, overrides = None, overrides + [f"{step.action}.checkpoint={plan.checkpoint}"]
    overrides += step.overrides
    flag = ["--parent", str(plan.results_dir / parent)] if parent else []
    return [step.action, "-e", str(step.spec), *flag, *overrides], overrides


def validate_flow(plan: FlowPlan) -> list[str]:
    """Every step's spec problems (one line each, prefixed by the step), the inputs parents will write aside."""
    from stereo.config.errors import SpecError
    from stereo.actions.preflight import preflight
    from stereo.config.load import resolve_spec

    lines = []
    for step in plan.steps:
        _, overrides = _step_argv(plan, step, engine_built=True)
        fed = {f"{step.action}.{k}" for k in FED_KEYS} if step.name in PARENT else set()
        deployed = step.name.startswith("deploy_") or step.name == "gen_trt_engine"
        try:
            resolve_spec(str(step.spec), overrides, action=step.action,
                         checks=lambda spec, action=step.action: preflight(spec, action))
        except SpecError as exc:  # a deploy spec may name only model_type: the rest comes from the ONNX sidecar
            lines += [f"flow step {step.name}: {p.render()}" for p in exc.errors
                      if p.key not in fed and not (deployed and p.key.startswith("model"))]
    return lines


def engine_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _done(folder: Path) -> bool:
    from stereo.actions.parent import _last_status

    return _last_status(folder) == "SUCCESS"


def _log_drift(plan: FlowPlan, flow_id: str) -> dict[str, float]:
    from stereo.actions.status import read_status
    from stereo.tracking.mlflow_tracker import default_tracking_uri

    folder = plan.results_dir / "deploy_evaluate"
    if not _done(folder):
        return {}
    kpi = read_status(folder)[-1].get("kpi") or {}
    metrics = {k: float(v) for k, v in kpi.items() if k.startswith("drift_")}
    if "epe" in kpi:
        metrics["deploy_epe"] = float(kpi["epe"])
    if metrics:
        from stereo.tracking import RunHandle
        from stereo.tracking.mlflow_tracker import MlflowTracker

        tracker = MlflowTracker(default_tracking_uri(plan.results_dir))
        flow = tracker.get_run(flow_id)
        if flow is not None:
            tracker.log_metrics(RunHandle(flow.run_id, flow.experiment_id, flow.name), metrics)
    return metrics


def run_flow(path: str, overrides: Sequence[str], run_step: Callable[[list[str]], int],
             echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Run the flow in `path`; `run_step(argv)` runs one `depth_net` action (the CLI's main). Returns the exit
    code: 0, 2 for a bad flow (nothing run), else the failing step's."""
    from stereo.actions.flow import FLOW_ENV, folder_flow

    plan = load_flow(path, overrides)
    problems = validate_flow(plan)
    if problems:
        for line in problems:
            echo(line)
        return 2
    resume = " ".join(["depth_net flow -e", str(path), *overrides])
    flow_id = os.environ.get(FLOW_ENV) or folder_flow(plan.results_dir)
    engine = engine_available()
    previous = os.environ.get(FLOW_ENV)
    if flow_id:
        os.environ[FLOW_ENV] = flow_id
    try:
        for i, step in enumerate(plan.steps, 1):
            head = f"[{i}/{len(plan.steps)}] {step.name}"
            if step.name == "gen_trt_engine" and not engine:
                echo(f"{head}: no TensorRT or CUDA GPU here, skipped; the deploy steps run the exported ONNX "
                     "with ONNX Runtime")
                continue
            if _done(plan.results_dir / step.name):
                echo(f"{head}: already SUCCESS in {plan.results_dir / step.name}, skipped")
                continue
            argv, _ = _step_argv(plan, step, engine)
            echo(f"{head}: depth_net {' '.join(argv)}")
            code = run_step(argv)
            if code != 0:
                echo(f"depth_net flow: step {step.name} failed (exit {code}; {plan.results_dir / step.name}/"
                     f"status.json); fix it and resume with: {resume}")
                return code
    finally:
        if previous is None:
            os.environ.pop(FLOW_ENV, None)
        else:
            os.environ[FLOW_ENV] = previous
    drift = _log_drift(plan, flow_id) if flow_id else {}
    summary = ", ".join(f"{k}={v:.4g}" for k, v in drift.items() if k in ("drift_mean_abs", "deploy_epe"))
    echo(f"depth_net flow: {len(plan.steps)} steps done in {plan.results_dir}; flow run {flow_id}"
         + (f"; {summary}" if summary else ""))
    return 0
