"""The deploy stage's search space and shapes (automl/plan/deploy_sweep.py plans the sweep; LaunchPlan.search_space
and automl/tune/deploy_trial.py read this): plain data, no import of the planner, so neither imports the other."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

PRECISIONS = ("fp32", "int8")
SCALES = (0.5, 0.75, 1.0)
ITERS = (1, 2, 4, 8)


def deploy_schema(model_iters: int) -> Dict[str, Any]:
    """The deploy stage's fields, in the schema dialect build_search_space and search-space files read."""
    return {"automl_default_parameters": ["deploy.valid_iters", "deploy.scale", "deploy.precision"],
            "properties": {"deploy": {"type": "object", "properties": {
                "valid_iters": {"type": "int", "minimum": 1, "maximum": 64, "default": int(model_iters),
                                "automl_enabled": True, "description": "GRU iterations in the exported graph"},
                "scale": {"type": "float", "minimum": 0.1, "maximum": 4.0, "default": 1.0, "automl_enabled": True,
                          "description": "input resolution / validation image size (sides -> multiples of 32)"},
                "precision": {"type": "categorical", "enum": list(PRECISIONS), "default": "fp32",
                              "automl_enabled": True, "description": "fp32, or int8 (ONNX Runtime static QDQ)"},
            }}}}


def default_choices(model_iters: int) -> Dict[str, Dict[str, Any]]:
    """The built-in space: categorical choices (a table, not a continuum: each point is one deployable engine)."""
    iters = sorted({*ITERS, max(1, int(model_iters))})
    return {"deploy.valid_iters": {"distribution": "categorical", "choices": iters},
            "deploy.scale": {"distribution": "categorical", "choices": list(SCALES)},
            "deploy.precision": {"distribution": "categorical", "choices": list(PRECISIONS)}}


def deploy_hw(scale: float, val_hw: Tuple[int, int]) -> Tuple[int, int]:
    """The deploy input (H, W): the validation size times `scale`, each side the nearest multiple of 32 (>= 32)."""
    return tuple(max(32, int(round(float(scale) * side / 32.0)) * 32) for side in val_hw)  # type: ignore[return-value]


def deploy_space(plan: Any):
    """The plan's search space (LaunchPlan.search_space for stage deploy): the file's, else the built-in one."""
    from automl.space.build import build_search_space
    from automl.space.files import load_search_space

    schema = deploy_schema(int(plan.deploy.get("model_iters") or 1))
    if plan.search_space_file:
        return load_search_space(plan.search_space_file, schema, fixed=plan.fixed).space
    iters = int(plan.deploy.get("model_iters") or 1)
    return build_search_space(schema, overrides=default_choices(iters), fixed=plan.fixed)


def review_lines(plan: Any) -> List[str]:
    d = plan.deploy
    return [f"stage deploy: no training; checkpoint {d['checkpoint']} exported per trial at its valid_iters x "
            f"resolution (scale of the validation size {d['val_height']}x{d['val_width']}, sides multiples of 32) x "
            f"precision -> {d['runtime']} on {d['device']}",
            f"int8 calibrates on the pairs under {d['calibration_dir']}; objectives "
            + ", ".join(f"{n}:{m}" for n, m in plan.objectives)]
