"""`depth_net <action> -e spec.yaml [key=value ...]`: a table of library functions.

Every action is one row of ACTIONS: the library function that runs it (imported only when that action
is invoked) and the spec type it takes. The CLI loads and checks the spec, prints warnings, calls the
function in-process and turns any exception into one line on stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import signal
import sys
import textwrap
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from stereo.errors import EXIT_OK, exit_code_of  # tiny: no heavy import before the first line

EXPERIMENT_SPEC = "stereo.config.spec:ExperimentSpec"
PARENT_ACTIONS = ("evaluate", "inference", "export", "gen_trt_engine", "quantize")  # stereo.actions.parent.FEEDS


@dataclass(frozen=True)
class Action:
    """One CLI action: `function` ('module:name') is called with the loaded spec and returns a result."""
    function: str
    help: str
    spec_type: str = EXPERIMENT_SPEC


#: Adding an action is one row here.
ACTIONS: Dict[str, Action] = {
    "validate": Action("stereo.config.load:spec_to_yaml", "Check a spec without running anything: every "
                       "problem is reported at once (file:line, key, value, fix); on success the resolved "
                       "spec (every default filled in) is printed as YAML. --action ACTION also checks what "
                       "that action needs (--action convert: the file is a flat convert spec)."),
    "convert": Action("stereo.actions.convert:convert", "Build annotation files from a dataset folder: "
                      "<results_dir>/train.txt + val.txt (0 < split_ratio < 1) or test.txt, overwritten; "
                      "status.json and experiment.yaml in <results_dir>/convert/. Takes the flat convert "
                      "spec (data_root, results_dir, *_dir_pattern, split_ratio, ...; see "
                      "docs/examples/convert_*.yaml).", spec_type="stereo.config.convert:ConvertConfig"),
    "train": Action("stereo.actions.train:train", "Train a stereo network: checkpoints in TAO layout under "
                    "<results_dir>/train/, exact auto-resume from dn_model_latest, val/* metrics to status.json "
                    "and MLflow."),
    "evaluate": Action("stereo.actions.deploy_eval:evaluate", "Score evaluate.checkpoint, an exported ONNX "
                       "graph or TensorRT engine (evaluate.trt_engine; with evaluate.checkpoint also a "
                       "PyTorch-vs-deploy drift report) or the predictions in evaluate.predictions_dir on "
                       "dataset.test_dataset: per-image and pixel-pooled EPE, bp1/2/3, D1, RMSE, per-sample CSV."),
    "inference": Action("stereo.actions.deploy_eval:inference", "Write colourised (and, on request, raw "
                        "PFM/NPY) disparity for dataset.infer_dataset with a checkpoint, an ONNX graph or a "
                        "TensorRT engine, plus a left | prediction | error visual."),
    "export": Action("stereo.actions.export:export", "Export a checkpoint to ONNX (left_image/right_image RGB "
                     "0..255 -> disparity; static, dynamic batch or dynamic H/W for FFS) with a JSON sidecar; "
                     "checked against PyTorch under ONNX Runtime."),
    "init-checkpoint": Action("stereo.actions.init_checkpoint:init_checkpoint", "Write a randomly initialised "
                              "checkpoint of a registered model (preset=ffs_bp2 by default, or model_spec=<a "
                              "depth_net spec>) for dry runs: <output>.pth (TAO-style) + .safetensors + .json, the "
                              "layout train publishes. Takes key=value pairs (output=..., preset=..., seed=...) "
                              "and optionally -e with a flat spec of those keys.",
                              spec_type="stereo.config.init_checkpoint:InitCheckpointConfig"),
    "gen_trt_engine": Action("stereo.actions.gen_trt_engine:gen_trt_engine", "Build a TensorRT engine from the "
                             "exported ONNX (GPU host + the stereo-automl[tensorrt] extra); precision and "
                             "min/opt/max profiles are checked before the build."),
    "quantize": Action("stereo.actions.quantize:quantize", "Post-training static int8 of an exported ONNX graph "
                       "(quantize.model_path; a checkpoint is exported first) with ONNX Runtime's QDQ tooling on "
                       "the CPU, calibrated on dataset.quant_calibration_dataset.images_dir; then int8 vs fp32: "
                       "drift and EPE (dataset.val_dataset), median latency, file size. TAO's torchao / "
                       "weight_only_ptq are refused with the reason. docs/deploy.md"),
    "flow": Action("stereo.actions.chain:run_flow", "Run TAO's seven-action chain in one command: train -> "
                   "evaluate -> inference -> export -> gen_trt_engine -> deploy inference -> deploy evaluate (or "
                   "the deploy-only six from flow.yaml's checkpoint), each step reading its input from the one "
                   "before (--parent), all nested under one MLflow flow run with the pyt-vs-deploy drift on it. "
                   "-e takes a flow spec (results_dir, spec, overrides, checkpoint, steps.<step>.{spec, "
                   "overrides}); every step's spec is checked first; a rerun skips the steps already SUCCESS. "
                   "Without TensorRT the deploy steps run the ONNX with ONNX Runtime. docs/deploy.md",
                   spec_type="flow"),
}

EPILOG = """\
spec:
  A YAML file in TAO depth_net layout (model, dataset, train, evaluate, inference, export,
  gen_trt_engine sections; docs/spec_reference.md lists every key); convert takes its own flat spec.
  Every action but validate writes <results_dir>/<action>/status.json and experiment.yaml and
  records an MLflow run (<results_dir>/mlflow.db unless $MLFLOW_TRACKING_URI is set); train, evaluate,
  inference, export and gen_trt_engine on one results_dir (or on a checkpoint trained there) nest under
  one "flow" run (<results_dir>/flow.json; $STEREO_FLOW_RUN_ID picks one: stereo/actions/flow.py).

overrides:
  Any number of key=value pairs after the spec replace values in it and get the same checks,
  e.g.  train.optim.lr=1.0e-5  dataset.train_dataset.data_sources[0].data_file=/data/train.txt
  Values are parsed as YAML: 8 is an integer, [320, 736] a list, true a boolean.

pre-flight (before torch/MLflow are imported or anything is written; validate without --action
  checks every data split and file the spec sets):
  the results folder is writable; the action's data files exist, have the right column count for
  their dataset_name and split, and the files of their first lines decode (--deep: every line);
  the training split holds at least one batch; checkpoints and other input files exist and our
  checkpoints' sidecars are readable and of the spec's model_type.

exit codes:
  0  success (warnings may have been printed)
  2  bad input: the spec, an override, a data file, a checkpoint or the results folder has a problem
     (one line each on stderr, naming file:line or the key, the value and the fix)
  1  failure while running the action (one line on stderr; --debug prints the traceback)
"""
START = """
start here:
  depth_net validate -e spec.yaml --action train     check a spec before a long run
  depth_net convert -e convert.yaml                  annotation files for a dataset folder
  depth_net train -e spec.yaml results_dir=/results  train; then evaluate / export with the same spec
  depth_net export -e spec.yaml --parent /results/train   a step reads its parent step's file (run id or folder)
  depth_net flow -e flow.yaml                        train -> ... -> deploy evaluate in one command (docs/deploy.md)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depth_net", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG + START,
        description="Stereo depth networks (FoundationStereo / FastFoundationStereo) driven by TAO "
                    "depth_net specs.\n\n  depth_net <action> -e spec.yaml [key=value ...]\n\n"
                    "`depth_net <action> --help` describes one action.")
    sub = parser.add_subparsers(title="actions", dest="action", metavar="<action>", required=True)
    for name, action in ACTIONS.items():
        p = sub.add_parser(name, help=action.help, description=textwrap.fill(action.help, 100), epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("-e", "--experiment_spec", required=name != "init-checkpoint", metavar="SPEC.yaml",
                       help="the spec file: the flat convert spec for convert, the flow spec for flow "
                            "(docs/deploy.md), else the TAO depth_net layout (docs/spec_reference.md)")
        p.add_argument("overrides", nargs="*", metavar="key=value",
                       help="flow spec keys: results_dir=DIR, spec=FILE, checkpoint=FILE, and "
                            "'overrides=[train.num_epochs=2, ...]' for every step (a step's own: "
                            "steps.<step>.overrides in the flow file; docs/deploy.md)" if name == "flow"
                       else "spec overrides (see below)")
        p.add_argument("--debug", action="store_true", help="print the full traceback on failure")
        p.add_argument("--deep", action="store_true", help="pre-flight: open and decode the files of every "
                       "annotation line, not only the first ones")
        if name in PARENT_ACTIONS:
            p.add_argument("--parent", metavar="RUN_ID|FOLDER", help="the step before this one (TAO's "
                           "parent_job_id): an MLflow run id or results folder of a train, export or "
                           "gen_trt_engine step; this action reads its published file (train: dn_model_best; "
                           "export: the ONNX; gen_trt_engine: the engine) and nests under its flow. A key=value "
                           "for the same key wins. stereo/actions/parent.py")
        if name == "validate":
            choices = [a for a in ACTIONS if a not in ("validate", "flow")]
            p.add_argument("--action", dest="check_action", choices=choices, metavar="ACTION",
                           help=f"also check what ACTION needs, one of: {', '.join(choices)} (e.g. --action "
                                "evaluate requires dataset.test_dataset and a checkpoint; --action convert "
                                "reads SPEC.yaml as a flat convert spec)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    action = ACTIONS[args.action]
    if args.action != "validate":  # first line before any heavy import (validate's stdout is the spec)
        from stereo.progress import announce

        announce(args.action, args.experiment_spec, args.overrides)
    if args.experiment_spec is None:  # init-checkpoint from key=value pairs alone
        args.experiment_spec = {}
    # train: Lightning's own SIGTERM handling ends the fit at the next batch
    previous = _end_like_ctrl_c_on(signal.SIGTERM, signal.SIGHUP) if args.action != "train" else {}
    try:
        if args.action == "flow":  # a list of actions: each step is this main() again
            from stereo.actions.chain import run_flow

            flags = [f for f, on in (("--deep", args.deep), ("--debug", args.debug)) if on]
            return run_flow(args.experiment_spec, args.overrides, run_step=lambda argv: main(argv + flags))
        return _run(args, action)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM/SIGHUP: status.json and MLflow already record it
        if previous:
            signal.setitimer(signal.ITIMER_REAL, 0)  # caught: no more re-raises (see _end_like_ctrl_c_on)
        print(f"depth_net {args.action}: interrupted ({exc or 'SIGINT'}); its status.json and MLflow run "
              "record it (FAILURE, KILLED)", file=sys.stderr)
        return 128 + signal.Signals[str(exc) or "SIGINT"]  # the handler below names the signal
    except Exception as exc:  # the CLI boundary: one clear line, never a traceback unless asked
        if args.debug:
            traceback.print_exc()
        return _report(args.action, exc)
    finally:
        if previous:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():  # main() called in-process (tests, notebooks) leaves no trace
            signal.signal(sig, handler)


def _end_like_ctrl_c_on(*signals: int) -> dict:
    """A termination signal ends the action as Ctrl-C does (stereo/actions/runner.py records FAILURE
    "interrupted" and ends the MLflow run KILLED), exit 128 + the signal: without this, a `kill` or a
    closed terminal left status.json RUNNING and the run RUNNING until the next run in that folder.
    Returns the handlers replaced (none off the main thread, where Python allows no handler)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    pending: list = []

    def handler(signum, frame):
        # raised where the main thread happens to be; inside a weakref callback or __del__ Python prints
        # "Exception ignored" and drops it, so until main() has caught it, SIGALRM raises it again every 0.5 s
        if signum != signal.SIGALRM:
            pending[:] = [signal.Signals(signum).name]
            signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)
        if pending:
            raise KeyboardInterrupt(pending[0])

    replaced = {sig: signal.signal(sig, handler) for sig in (*signals, signal.SIGALRM)}
    return replaced


def _run(args: argparse.Namespace, action: Action) -> int:
    from stereo.config.load import resolve_spec

    check = getattr(args, "check_action", None) if args.action == "validate" else args.action
    spec_type = action.spec_type
    if check and check in ACTIONS and ACTIONS[check].spec_type != EXPERIMENT_SPEC:
        spec_type = ACTIONS[check].spec_type
    from stereo.actions.preflight import preflight  # torch-free: answered before any heavy import

    parent_flow = None
    if getattr(args, "parent", None):  # before the spec: the parent's file becomes an override
        from stereo.actions.parent import article, resolve_parent, store_for, with_parent

        found = resolve_parent(args.parent, args.action, store_for(args.experiment_spec, args.overrides))
        args.overrides, notes = with_parent(found, args.overrides)
        for line in notes + [f"depth_net {args.action}: --parent {found.ref} is {article(found.action)} step: "
                             + " ".join(a for a in found.argv() if a in args.overrides)]:
            print(line, file=sys.stderr)
        parent_flow = found.flow_run_id

    def disk_checks(spec: Any) -> List[Any]:
        return preflight(spec, check, deep=args.deep)

    resolved = resolve_spec(args.experiment_spec, args.overrides, spec_type=_import(spec_type, "spec type"),
                            action=check, checks=disk_checks)
    for warning in resolved.warnings:
        print(warning.render(), file=sys.stderr)
    run_action_fn = _import(action.function, f"depth_net {args.action}")
    from stereo.actions.flow import FLOW_ACTIONS, FLOW_ENV, flow_parent  # light: no torch, MLflow only when it runs

    import os

    if parent_flow and not os.environ.get(FLOW_ENV):  # the parent step's flow, unless the user chose one
        parent = parent_flow
    else:
        parent = flow_parent(resolved.spec, args.action) if args.action in FLOW_ACTIONS else None
    result = run_action_fn(resolved.spec, parent_run_id=parent) if parent else run_action_fn(resolved.spec)
    _print_result(result)
    return EXIT_OK


def _import(target: str, what: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeError(f"{what} needs {module_name}, which cannot be imported ({exc}); install the "
                           "missing dependency or update stereo-automl") from exc
    return getattr(module, attr)


def _print_result(result: Any) -> None:
    if result is None:
        return
    if isinstance(result, str):
        sys.stdout.write(result if result.endswith("\n") else result + "\n")
    elif dataclasses.is_dataclass(result):
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    else:
        print(result)


def _report(action: str, exc: BaseException) -> int:
    from stereo.config.errors import SpecError

    if isinstance(exc, SpecError):
        for line in _lines(exc):
            print(line, file=sys.stderr)
        return exc.exit_code
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"depth_net {action}: {type(exc).__name__}: {message}", file=sys.stderr)
    return exit_code_of(exc)  # by type: each class's exit_code (stereo/errors.py); other exceptions 1


def _lines(exc: Any) -> List[str]:
    return [p.render() for p in exc.problems]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
