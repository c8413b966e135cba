"""``automl``: a thin table of library calls (STYLE habit 11).

    automl run --skill tiny-demo [--policy auto|on|off] [--request TEXT] [key=value ...]
    automl run --resume automl_runs/tiny-demo-20260101-120000
    automl ui --store automl_runs/tiny-demo-20260101-120000

Every exception becomes one line and a non-zero exit, mapped by type (automl/errors.py): 2 bad input,
1 anything else, 130 interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Optional, Sequence

from automl.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, LaunchError, exit_code_of
from automl.plan.configs import ALGORITHMS, SCHEDULERS, RunConfig, SearchConfig, TuneConfig
from automl.plan.launch import LaunchPlan, build_plan, load_plan
from automl.plan.review import review

RUN_HELP = """\
Decide whether this training is a sweep or one plain run (the policy), print the launch review, then run it.

Policy: --policy wins; else --request: an AutoML-off phrase ("no HPO", "turn off AutoML", "plain
training", "automl_policy: off") means off, "enable AutoML" / "automl_policy: on" means on (questions and
comparisons are not requests); else auto. auto/on sweep when the skill has automl_enabled: true and ships
schemas/train.schema.json and references/spec_template_train.yaml; otherwise one plain training run, and
the review says why (a skill without its template then needs --spec).

Pre-flight (also with --dry-run, which exits 2 when the review says NOT READY): the spec is validated,
its data files are checked, one trial is planned (steps, validations) and a sweep that could never score
a trial is refused with the fix; searched keys that cannot change this run are dead and leave the search
(--keep-dead-params keeps them); a short probe measures one trial's peak memory and seconds per step
(cached per spec shape; --no-probe skips it), lowers --max-concurrent to what fits in memory and
estimates the duration. A sweep in which no trial was scored exits 1 and says why.

Sweep: Ray Tune with an Optuna searcher and an early-stopping scheduler. The search space comes from
search_spaces/<model>.yaml (or the schema's automl_default_parameters); its metric/mode are the defaults.
Each trial trains with the train action; its spec is the base spec (template + skill key_defaults + your
key=value overrides, shorthands such as learning_rate=1e-4 expanded) plus the sampled values; a key you
override is fixed, not searched (results_dir=DIR means --output DIR). GPUs per trial default to
train.num_gpus on a machine with GPUs (0 without) and must agree with it. A trial that
raises, diverges (NaN) or dies is recorded as failed with its reason, never scored. Everything lands in
the output folder: launch.json, ledger/, trials/<id>/, results.json, best_spec.yaml, leaderboard.txt,
mlflow.db (one parent run per sweep, one nested run per trial). If the sweep is interrupted (Ctrl-C,
SIGTERM, even SIGKILL) continue it with `automl run --resume DIR`: finished trials are never re-run.
"""


def _run_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="launch a sweep or a plain training run (policy first)", description=RUN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to train")
    g.add_argument("--skill", help="skill name under skills/ (e.g. tiny-demo, fast-foundation-stereo)")
    g.add_argument("--skill-dir", help="a skill directory in TAO's layout (e.g. a tao-skill-bank checkout)")
    g.add_argument("--spec", help="train spec YAML to start from (default: the skill's spec_template_train.yaml)")
    g.add_argument("overrides", nargs="*", metavar="key=value",
                   help="spec overrides for every trial: dotted keys (dataset.train_dataset.data_sources[0]."
                        "data_file=...) or the skill's shorthands (learning_rate=1e-4)")
    g = p.add_argument_group("policy")
    g.add_argument("--policy", choices=("auto", "on", "off"), help="auto (default): sweep when the skill allows "
                   "it; on: same routing, stated as requested; off: one plain training run")
    g.add_argument("--request", help="the user's words; an AutoML-off phrase ('no HPO') means --policy off")
    g = p.add_argument_group("what is searched")
    g.add_argument("--search-space", help="search_spaces/<name>.yaml name or a YAML path (default: the skill's)")
    g.add_argument("--metric", help="objective reported by validation (default: the search-space file's, val/epe)")
    g.add_argument("--mode", choices=("min", "max"), help="minimise or maximise --metric (default: the file's)")
    g.add_argument("--objective", action="append", default=[], metavar="METRIC:MODE",
                   help="an objective, repeatable (--objective val/epe:min --objective train/time_s:min): two or "
                        "more make the sweep multi-objective (Optuna's multi-objective samplers; the Pareto front "
                        "in every record; best = the front's trial best by the first objective). --metric/--mode is "
                        "the single-objective spelling")
    g.add_argument("--constraint", action="append", default=[], metavar="'METRIC<=X'",
                   help="a bound a trial must meet to be on the Pareto front or best, repeatable (METRIC<=X or "
                        "METRIC>=X; quote it); samplers that support it (tpe, nsga2, bayesian) steer away from "
                        "infeasible regions")
    g.add_argument("--warm-start", metavar="DIR", help="seed the sampler with the completed trials of a finished "
                   "sweep folder (same space: a changed space is reported line by line, trials outside it dropped)")
    g.add_argument("--keep-dead-params", action="store_true",
                   help="search keys the pre-flight finds dead (they cannot change this run, e.g. lr_decay "
                        "whose MultiStepLR milestones lie beyond the last step); by default they leave the space "
                        "and the review and the parent MLflow run say why")
    g.add_argument("--score-on", choices=("train", "deploy"), help="train (default): trials are scored by their "
                   "validation; deploy: each trial's best checkpoint is also exported to ONNX at the deploy shape, "
                   "built (TensorRT on a GPU, else ONNX Runtime), evaluated on the val set and timed: deploy/epe, "
                   "deploy/latency_ms, deploy/peak_mem_mb, deploy/drift_px (usable as --metric)")
    g.add_argument("--stage", choices=("train", "deploy"), default="train", help="train (default): trials train; "
                   "deploy: a deploy-only sweep of --checkpoint, no training: each trial exports it at sampled "
                   "deploy.valid_iters x deploy.scale (input size / val size, sides multiples of 32) x "
                   "deploy.precision (fp32/int8), runs it with ONNX Runtime on the val set and times it; default "
                   "objectives deploy/epe:min and deploy/latency_ms:min (docs/automl.md)")
    g.add_argument("--checkpoint", help="--stage deploy: the trained checkpoint to sweep (it must fit the skill's "
                   "model)")
    g.add_argument("--then", choices=("deploy",), help="deploy: after the sweep, run depth_net flow's deploy-only "
                   "steps on the best trial's checkpoint (<output>/then_deploy, nested under the sweep's run)")
    g = p.add_argument_group("how it is searched")
    g.add_argument("--algorithm", choices=tuple(ALGORITHMS), default="tpe",
                   help="; ".join(f"{k}: {v}" for k, v in ALGORITHMS.items()) + " (default tpe)")
    g.add_argument("--scheduler", choices=tuple(SCHEDULERS), default="auto",
                   help="; ".join(f"{k}: {v}" for k, v in SCHEDULERS.items()) + " (default auto)")
    g.add_argument("--grace-period", type=int, default=1, help="validations every trial gets before ASHA may stop it")
    g.add_argument("--reduction-factor", type=int, default=3, help="ASHA/HyperBand keep 1/N of the trials per rung")
    g.add_argument("--grid-points", type=int, default=3, help="values per float parameter for --algorithm grid")
    g.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    g = p.add_argument_group("budget")
    g.add_argument("--num-samples", type=int, help="trials to run (default 8; grid: every point)")
    g.add_argument("--max-concurrent", type=int, help="trials at once (default: CPUs / --cpus-per-trial)")
    g.add_argument("--time-budget", type=float, metavar="S", help="stop starting trials after S seconds")
    g.add_argument("--max-failures", type=int, default=0, help="retries of a failed trial (default 0)")
    g = p.add_argument_group("where it runs")
    g.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per trial (default 1)")
    g.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (default: train.num_gpus on a machine with "
                   "GPUs, 0 without; 0.5 shares one GPU between two trials; must match train.num_gpus)")
    g.add_argument("--ray-address", help="join a running Ray cluster (e.g. 10.0.0.1:6379); default: start an "
                                         "embedded one for this run")
    g.add_argument("--output", help="run folder (default automl_runs/<skill>-<timestamp>)")
    g.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or "
                                          "sqlite:///<output>/mlflow.db)")
    g.add_argument("--experiment", default="depth_net", help="MLflow experiment (default depth_net)")
    g = p.add_argument_group("control")
    g.add_argument("--resume", metavar="DIR", help="continue the sweep in DIR (its launch.json decides "
                                                   "everything; only --ray-address may change)")
    g.add_argument("--dry-run", action="store_true", help="print the launch review and stop")
    g.add_argument("--no-probe", action="store_true",
                   help="skip the memory/time probe (one trial's first training steps in a subprocess, cached "
                        "per spec shape); without it the review cannot check --max-concurrent against memory "
                        "or estimate the duration")
    return p


class _Parser(argparse.ArgumentParser):
    """A bad option is one line (not argparse's usage block) and exit 2, like every other bad input."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="automl", description="AutoML for stereo-depth networks: the policy "
                                     "decides sweep or plain training, then Ray Tune + Optuna sweep it, tracked in "
                                     "MLflow, resumable after any interruption.")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    ui = sub.add_parser("ui", help="open the MLflow UI on a run folder (options: automl ui --help)", add_help=False)
    ui.add_argument("args", nargs=argparse.REMAINDER)
    server = sub.add_parser("server", help="an MLflow tracking server on PostgreSQL for clusters and teams "
                            "(options: automl server --help)", add_help=False)
    server.add_argument("args", nargs=argparse.REMAINDER)
    promote = sub.add_parser("promote", help="register a sweep's best trial as a model version (options: automl "
                             "promote --help)", add_help=False)
    promote.add_argument("args", nargs=argparse.REMAINDER)
    return parser


_RESUME_LOCKED = ("skill", "skill_dir", "spec", "policy", "request", "search_space", "metric", "mode",
                  "objective", "constraint", "warm_start", "output", "tracking_uri", "num_samples", "max_concurrent",
                  "time_budget", "gpus_per_trial", "score_on", "then", "checkpoint")


def plan_from_args(args: argparse.Namespace) -> LaunchPlan:
    if args.resume:
        given = [k for k in _RESUME_LOCKED if getattr(args, k, None) not in (None, [])]
        given += ["key=value"] if args.overrides else []
        if given:
            raise LaunchError(f"--resume {args.resume}: the saved launch.json decides {', '.join(given)}; "
                              "drop those options (only --ray-address and --dry-run may go with --resume)")
        plan = load_plan(args.resume)
        if args.ray_address:
            plan.ray_address = args.ray_address
        return plan
    search = SearchConfig(skill=args.skill, skill_dir=args.skill_dir, spec=args.spec, overrides=tuple(args.overrides),
                          policy=args.policy, request=args.request, search_space=args.search_space,
                          metric=args.metric, mode=args.mode, keep_dead_params=args.keep_dead_params,
                          objectives=tuple(args.objective), constraints=tuple(args.constraint),
                          warm_start=args.warm_start)
    tune = TuneConfig(algorithm=args.algorithm, scheduler=args.scheduler,
                      num_samples=8 if args.num_samples is None else args.num_samples,
                      max_concurrent=args.max_concurrent, time_budget_s=args.time_budget,
                      max_failures=args.max_failures, seed=args.seed, grace_period=args.grace_period,
                      reduction_factor=args.reduction_factor, grid_points=args.grid_points)
    where = RunConfig(output=args.output, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                      ray_address=args.ray_address, tracking_uri=args.tracking_uri, experiment=args.experiment)
    if args.stage == "deploy" or args.checkpoint:  # a deploy-only sweep (automl/plan/deploy_sweep.py)
        from automl.plan.deploy_sweep import build_deploy_plan, refuse_train_options

        if args.stage != "deploy":
            raise LaunchError("--checkpoint names the checkpoint of a deploy-only sweep: add --stage deploy")
        refuse_train_options(args)
        if tune.num_samples == 8 and args.num_samples is None:
            tune = dataclasses.replace(tune, num_samples=6)
        return build_deploy_plan(search, tune, where, args.checkpoint)
    from automl.plan.deploy_step import DeployConfig

    plan = build_plan(search, tune, where, deploy=DeployConfig(score_on=args.score_on or "train", then=args.then))
    if args.warm_start and plan.sweep:
        from automl.tune.warm_start import attach  # reads the finished sweep's ledger (no Ray, no Optuna)

        attach(plan, args.warm_start)
    return plan


def cmd_run(args: argparse.Namespace) -> int:
    from automl.plain import run_plain

    plan = plan_from_args(args)
    problems = []
    if plan.sweep:
        from automl.plan.cluster import cluster_problems
        from automl.tune.backend import preflight  # Ray/Optuna stay unimported until a sweep is certain

        problems = cluster_problems(ray_address=plan.ray_address, tracking_uri=plan.tracking_uri) + preflight(plan)
        if not (plan.spec_problems or problems or args.resume or args.no_probe or plan.stage == "deploy"):
            from automl.plan.probe import measure

            print("automl run: probing one trial's memory and time (a few training steps in a subprocess; "
                  "cached per spec shape, --no-probe skips it) ...", flush=True)
            measure(plan)
    print(review(plan, problems), flush=True)
    if plan.spec_problems or problems:
        first = (plan.spec_problems + problems)[0]
        raise LaunchError(f"{'NOT READY' if args.dry_run else 'not launching'}: {first} (see the review above)")
    if args.dry_run:
        return EXIT_OK
    if not plan.sweep:
        result = run_plain(plan)
        print(f"plain training {result.status}: best {result.best_metrics}; checkpoint {result.best_checkpoint}")
        return EXIT_OK
    from automl.driver import run_sweep

    outcome = run_sweep(plan)
    if outcome["state"] != "completed":
        return EXIT_INTERRUPTED
    if (outcome.get("then_deploy") or {}).get("exit_code"):  # --then deploy: the flow's failing step's code
        return int(outcome["then_deploy"]["exit_code"])
    unscored = _why_nothing_scored(outcome["trials"], plan.run_dir)
    if unscored:
        print(f"automl: error: {unscored}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _why_nothing_scored(trials, run_dir: str) -> str:
    """'' when at least one trial was scored; else one line saying why none was."""
    counted = [t for t in trials if not t.get("interrupted")]
    if any(t.get("metric") is not None and t.get("status") in ("completed", "stopped") for t in counted):
        return ""
    failed = [t for t in counted if t.get("status") == "failed"]
    if not failed:
        return (f"no trial was scored ({len(counted)} finished without a score), so the sweep has no best; a "
                f"--time-budget that ends before the first validation does this: raise it (see {run_dir}/"
                "leaderboard.txt)")
    first = f"; first failure {failed[0]['trial_id']}: {failed[0].get('error') or '?'}" if failed else ""
    return (f"no trial was scored ({len(failed)} of {len(counted)} failed{first}), so the sweep has no best; "
            f"fix that cause and run again (every trial's reason: {run_dir}/leaderboard.txt)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ui"]:  # automl.ui parses its own options (and its own --help)
        from automl.ui.server import main as ui_main

        return int(ui_main(argv[1:]) or 0)
    if argv[:1] == ["server"]:  # likewise automl server and automl promote
        from automl.server.tracking import main as server_main

        return int(server_main(argv[1:]) or 0)
    if argv[:1] == ["promote"]:
        from automl.server.registry import main as promote_main

        return int(promote_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return cmd_run(args)
    except KeyboardInterrupt:
        print(f"automl: interrupted{_resume_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the CLI's job: one clear line and an exit code
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"automl: error: {text}{_resume_hint(args)}", file=sys.stderr)
        return exit_code_of(exc)


def _resume_hint(args: argparse.Namespace) -> str:
    from pathlib import Path

    folder = args.resume or args.output
    if folder and (Path(folder) / "launch.json").is_file():
        from automl.commands import resume_command

        return f"; resume with: {resume_command(Path(folder).resolve())}"
    return ""


if __name__ == "__main__":
    sys.exit(main())
