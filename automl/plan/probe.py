"""The memory and time probe: one trial's peak memory and seconds per step, measured before a sweep.

    result = measure(plan)           # runs (or reuses) the probe and fits the plan to it

What it runs: a fresh Python process (``python -m automl.plan.probe SPEC OUT``) builds the trial's model
from the base spec and trains it for :data:`PROBE_STEPS` optimizer steps with Lightning, exactly as
a trial does (same precision, optimizer, schedule, loss), on synthetic batches of the spec's training
crop and batch size, on the trial's device (CPU with the trial's thread count, or one GPU), then
times one validation forward at the size of the first validation image. Step 1 warms up (allocator,
kernel choice); step 2 is timed. A separate process because its peak is what a trial process will
hold: on the CPU the peak resident set (``ru_maxrss``: Python + torch + model + activations), on a GPU
also ``torch.cuda.max_memory_reserved`` plus the CUDA context. Results are cached per *spec shape*
(model section, crop, batch sizes, validation size, precision, device, threads, torch version) under
``$AUTOML_PROBE_CACHE`` (default ``~/.cache/stereo-automl/probe``), so a second sweep of the same
shape costs nothing.

What it decides (:func:`fit_plan`, pure): how many trials fit at once in the memory available now
(host: ``MemAvailable`` less 1 GiB for Ray's own processes, 90 % of it; GPU: free memory of the
device), lowering ``--max-concurrent`` and saying so; and an estimate of the sweep's duration:
a fixed ~10 s (Ray, MLflow, report) + rounds of ``max_concurrent`` trials x (steps x s/step +
validations x batches x s/batch + model set-up + ~1 s sweep overhead a trial).
ASHA stops weaker trials early, so the estimate is an upper bound.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

PROBE_STEPS = 2
PROBE_VERSION = 1
CACHE_ENV = "AUTOML_PROBE_CACHE"
RAY_RESERVE = 1 << 30  # Ray's GCS, raylet, agents and the driver, besides the trials
HOST_SHARE = 0.9  # Ray's memory monitor kills workers at 95 % of the node's memory
CUDA_CONTEXT = 512 << 20  # what a CUDA context costs a trial on top of torch's reserved memory
GIB = float(1 << 30)
TRIAL_OVERHEAD_S = 1.0  # per trial, steady state (docs/BENCHMARKS.md, sweep overhead: 0.51 s measured)
SWEEP_FIXED_S = 10.0  # ray.init, MLflow parent run, report and plots (BENCHMARKS: ~8 s)


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stereo-automl" / "probe"


def first_val_size(raw: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """(H, W) of the first validation sample's left image, read from its header (None without val data)."""
    from stereo.data.annotations import read_annotation_file
    from stereo.data.datasets import read_any_size

    sources = (((raw.get("dataset") or {}).get("val_dataset") or {}).get("data_sources")) or []
    if not sources:
        return None
    line = read_annotation_file(sources[0]["data_file"], (2, 3, 4))[0]
    return tuple(read_any_size(line.paths[0]))


def _gpu_model() -> str:
    """The NVIDIA driver's model name of GPU 0, read without initialising CUDA in this process."""
    import glob

    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        for line in Path(info).read_text().splitlines():
            if line.startswith("Model:"):
                return line.split(":", 1)[1].strip()
    return "gpu"


def shape_key(raw: Dict[str, Any], device: str, threads: int, val_hw: Optional[Tuple[int, int]]) -> str:
    from importlib.metadata import version

    d = raw.get("dataset") or {}
    t = raw.get("train") or {}
    shape = {"model": raw.get("model"), "crop": ((d.get("train_dataset") or {}).get("augmentation") or {})
             .get("crop_size"), "batch": (d.get("train_dataset") or {}).get("batch_size"),
             "val_batch": (d.get("val_dataset") or {}).get("batch_size"), "val_hw": val_hw,
             "precision": t.get("precision"), "optim": t.get("optim"), "max_disparity": d.get("max_disparity"),
             "device": device, "gpu": _gpu_model() if device == "cuda" else "",
             "threads": threads, "torch": version("torch"), "version": PROBE_VERSION}
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run_probe(raw: Dict[str, Any], *, device: str, threads: int, timeout_s: float = 600.0,
              cache: Optional[Path] = None) -> Dict[str, Any]:
    """The probe's measurement for this spec shape: from the cache, or a fresh probe process."""
    from stereo.atomic_io import atomic_write_json

    val_hw = first_val_size(raw)
    cache = cache_dir() if cache is None else cache
    path = cache / f"{shape_key(raw, device, threads, val_hw)}.json"
    if path.is_file():
        try:
            return {**json.loads(path.read_text()), "cached": str(path)}
        except json.JSONDecodeError:
            pass  # a torn cache entry: measure again
    cache.mkdir(parents=True, exist_ok=True)
    job = {"spec": raw, "device": device, "threads": threads, "val_hw": val_hw}
    spec_file = atomic_write_json(cache / f".{path.stem}.job.json", job)
    out_file = cache / f".{path.stem}.out.json"
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    started = time.time()
    try:
        done = subprocess.run([sys.executable, "-m", "automl.plan.probe", str(spec_file), str(out_file)], env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"the probe took longer than {timeout_s:g} s (one trial step is very slow here)"}
    finally:
        spec_file.unlink(missing_ok=True)
    if done.returncode != 0 or not out_file.is_file():
        lines = [x for x in (done.stderr or "").strip().splitlines() if x.strip()]
        return {"error": (lines[-1] if lines else f"exit code {done.returncode}")[:500]}
    result = json.loads(out_file.read_text())
    out_file.unlink(missing_ok=True)
    result["probe_seconds"] = round(time.time() - started, 2)
    atomic_write_json(path, result)
    return result


def host_available() -> int:
    """MemAvailable of this machine in bytes (what can be used without swapping)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable line")


def fit_plan(plan: Any, probe: Dict[str, Any], *, available: Optional[int] = None) -> Dict[str, Any]:
    """Concurrency and duration from a probe result; lowers ``plan.max_concurrent`` if trials would not fit
    and records everything in ``plan.probe``. `available`: host bytes available (None: read it now)."""
    info = dict(probe)
    if "error" in probe:
        info["notes"] = [f"memory/time probe failed: {probe['error']}; concurrency not checked against memory"]
        plan.probe = info
        return info
    notes: List[str] = []
    host = host_available() if available is None else int(available)
    usable = max(0, int((host - RAY_RESERVE) * HOST_SHARE))
    fits = usable // max(1, int(probe["peak_host_bytes"]))
    why = f"one trial peaks at {probe['peak_host_bytes'] / GIB:.2f} GB of host memory, {host / GIB:.1f} GB available"
    if probe.get("device") == "cuda" and plan.gpus_per_trial > 0:
        need = int(probe["peak_device_bytes"]) + CUDA_CONTEXT
        per_gpu = int(probe["device_free_bytes"]) // need
        gpus = max(1, int(probe.get("device_count", 1)))
        gpu_fits = gpus * per_gpu if plan.gpus_per_trial < 1 else (gpus // max(1, int(plan.gpus_per_trial))
                                                                    if per_gpu >= 1 else 0)
        if plan.gpus_per_trial < 1:
            gpu_fits = min(gpu_fits, int(gpus / plan.gpus_per_trial))
        if gpu_fits < fits:
            fits = gpu_fits
            why = (f"one trial peaks at {need / GIB:.2f} GB of GPU memory (with the CUDA context), "
                   f"{probe['device_free_bytes'] / GIB:.1f} GB free per GPU")
    info["fits"] = int(fits)
    if fits < 1:
        notes.append(f"WARNING: not even one trial fits: {why}; trials run one at a time and may be killed for "
                     "memory: lower the crop (dataset.train_dataset.augmentation.crop_size) or "
                     "dataset.train_dataset.batch_size, or free memory")
        if plan.max_concurrent > 1:
            info["lowered_from"] = plan.max_concurrent
            plan.max_concurrent = 1
    elif plan.max_concurrent > fits:
        notes.append(f"--max-concurrent lowered from {plan.max_concurrent} to {fits}: {why}")
        info["lowered_from"] = plan.max_concurrent
        plan.max_concurrent = int(fits)
    else:
        notes.append(f"{plan.max_concurrent} trial(s) at once fit: {why}")
    info["estimate_s"], info["per_trial_s"] = estimate(plan, probe)
    info["notes"] = notes
    plan.probe = info
    return info


def estimate(plan: Any, probe: Dict[str, Any]) -> Tuple[float, float]:
    """(sweep seconds, seconds of one full trial) from the planned trial shape and the probe's timings."""
    shape = plan.trial_shape or {}
    per_trial = (shape.get("total_steps", 0) * probe["seconds_per_step"]
                 + len(shape.get("validation_steps", ())) * shape.get("val_batches", 0) * probe["val_seconds_per_batch"]
                 + probe.get("setup_seconds", 0.0) + TRIAL_OVERHEAD_S)
    rounds = math.ceil(plan.num_samples / max(1, plan.max_concurrent))
    total = SWEEP_FIXED_S + rounds * per_trial
    if plan.time_budget_s:
        total = min(total, float(plan.time_budget_s))
    return round(total, 1), round(per_trial, 2)


def measure(plan: Any, *, timeout_s: float = 600.0) -> Dict[str, Any]:
    """Probe the plan's trial shape on the trial's device (or reuse the cached probe) and fit the plan."""
    device = "cuda" if plan.gpus_per_trial > 0 else "cpu"
    threads = max(1, int(plan.cpus_per_trial))
    raw = {**plan.base_spec, "results_dir": str(plan.run_dir)}
    return fit_plan(plan, run_probe(raw, device=device, threads=threads, timeout_s=timeout_s))


def review_lines(probe: Dict[str, Any]) -> List[str]:
    """The review's lines about the probe (empty when it did not run)."""
    if not probe:
        return []
    if "error" in probe:
        return list(probe.get("notes", ()))
    where = f"cached {probe['cached']}" if probe.get("cached") else f"measured in {probe.get('probe_seconds', 0):g} s"
    mem = f"peak {probe['peak_host_bytes'] / GIB:.2f} GB host memory"
    if probe.get("device") == "cuda":
        mem += f", {probe['peak_device_bytes'] / GIB:.2f} GB GPU memory (torch reserved)"
    lines = [f"{mem}; {probe['seconds_per_step']:.3f} s per training step (crop {probe['crop']}, batch "
             f"{probe['batch']}, {probe['device']}, {probe['threads']} thread(s)); "
             f"{probe['val_seconds_per_batch']:.3f} s per validation batch; {where}"]
    lines += list(probe.get("notes", ()))
    if "estimate_s" in probe:
        lines.append(f"estimate: {_duration(probe['estimate_s'])} or more for the sweep "
                     f"({_duration(probe['per_trial_s'])} per full trial as probed on an idle core; "
                     "checkpoint writes, logging and other load on the machine come on top, early stopping "
                     "takes off; the progress line's ETA follows the real trials)")
    return lines


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# --- the probe process ----------------------------------------------------------------------------
def _probe(job: Dict[str, Any]) -> Dict[str, Any]:
    import resource

    import pytorch_lightning as pl
    import torch

    from stereo.config.load import load_spec
    from stereo.data.loader import collate_stereo
    from stereo.training.lightning_module import StereoLitModule
    from stereo.models import build_model
    from stereo.training.trainer import quiet_lightning, trainer_settings

    torch.set_num_threads(int(job["threads"]))
    device = job["device"]
    cuda = device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("the trials train on a GPU but this probe process sees none")
    free, total = torch.cuda.mem_get_info() if cuda else (0, 0)
    spec = load_spec(job["spec"], action="train")
    quiet_lightning()
    started = time.time()
    model = build_model(spec.model)
    module = StereoLitModule(model, spec.train.optim, spec.dataset.max_disparity)
    setup = time.time() - started
    crop = list(spec.dataset.train_dataset.augmentation.crop_size)
    batch = int(spec.dataset.train_dataset.batch_size)
    gen = torch.Generator().manual_seed(0)

    def sample(h: int, w: int, i: int) -> dict:
        disp = torch.rand(1, h, w, generator=gen) * (spec.dataset.max_disparity * 0.5)
        return {"left": torch.rand(3, h, w, generator=gen) * 255, "right": torch.rand(3, h, w, generator=gen) * 255,
                "disp": disp, "valid": torch.ones(1, h, w), "meta": {"name": f"probe{i}", "orig_hw": (h, w)}}

    items = [sample(crop[0], crop[1], i) for i in range(batch * PROBE_STEPS)]
    loader = torch.utils.data.DataLoader(items, batch_size=batch, collate_fn=collate_stereo)
    times: List[float] = []

    class StepTimer(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
            if cuda:
                torch.cuda.synchronize()
            times.append(-time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, b, batch_idx):
            if cuda:
                torch.cuda.synchronize()
            times[-1] += time.perf_counter()

    settings = trainer_settings(spec.train, cuda_available=cuda)
    for key in ("devices", "num_nodes", "strategy", "max_steps", "max_epochs", "check_val_every_n_epoch",
                "log_every_n_steps", "use_distributed_sampler"):
        settings.pop(key, None)
    trainer = pl.Trainer(**settings, devices=1, num_nodes=1, max_steps=PROBE_STEPS, max_epochs=1,
                         limit_val_batches=0, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[StepTimer()])
    trainer.fit(module, loader)
    val_s = 0.0
    val_hw = job.get("val_hw")
    if val_hw:
        val_batch = int(spec.dataset.val_dataset.batch_size)
        vb = collate_stereo([sample(int(val_hw[0]), int(val_hw[1]), i) for i in range(val_batch)])
        target = torch.device("cuda") if cuda else torch.device("cpu")
        module = module.to(target).eval()
        vb = {k: (v.to(target) if torch.is_tensor(v) else v) for k, v in vb.items()}
        with torch.no_grad():
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            module._predict(vb)
            if cuda:
                torch.cuda.synchronize()
            val_s = time.perf_counter() - t0
    peak_host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"device": device, "threads": int(job["threads"]), "crop": crop, "batch": batch, "val_hw": val_hw,
            "steps": len(times), "seconds_per_step": round(min(times[1:] or times), 4),
            "first_step_seconds": round(times[0], 4), "val_seconds_per_batch": round(val_s, 4),
            "setup_seconds": round(setup, 3), "peak_host_bytes": int(peak_host),
            "peak_device_bytes": int(torch.cuda.max_memory_reserved()) if cuda else 0,
            "device_free_bytes": int(free), "device_total_bytes": int(total),
            "device_count": torch.cuda.device_count() if cuda else 0, "torch": torch.__version__,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(argv: Optional[List[str]] = None) -> int:
    from stereo.atomic_io import atomic_write_json

    job_file, out_file = (argv if argv is not None else sys.argv[1:])[:2]
    atomic_write_json(out_file, _probe(json.loads(Path(job_file).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
