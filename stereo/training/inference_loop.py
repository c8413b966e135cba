"""The no-grad prediction loop shared by the evaluate and inference actions.

Batches are collated to the largest image (bottom/right padding); every prediction is cropped back to
its sample's `meta['orig_hw']` before anyone sees it, so outputs never include collate padding.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from stereo.training.weights import load_weights


def inference_device() -> torch.device:
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def load_model(model_cfg, checkpoint: str | os.PathLike, *, what: str,
               device: torch.device | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build `model_cfg`, load `checkpoint` strictly, eval mode on `device`; returns (model, meta)."""
    from stereo.actions.runner import BadInputError
    from stereo.models import build_model

    if not checkpoint:
        raise BadInputError(f"{what} is empty; set it to a checkpoint (.safetensors/.pth/.ckpt), e.g. "
                            "<results_dir>/train/dn_model_best.safetensors.")
    model = build_model(model_cfg)
    meta = load_weights(model, checkpoint, model_type=model_cfg.model_type, what=what)
    return model.eval().to(device or inference_device()), meta


def samples(loader, model: torch.nn.Module | None = None,
            device: torch.device | None = None) -> Iterator[dict[str, Any]]:
    """Per sample: {'meta', 'left' [3,H,W], 'disp'/'valid' [1,H,W] when GT exists, 'pred' [1,H,W] when a
    model is given}, all CPU float32 at the sample's own size."""
    device = device or inference_device()
    with torch.no_grad():
        for batch in loader:
            pred = None
            if model is not None:
                pred = model(batch["left"].to(device), batch["right"].to(device), test_mode=True).float().cpu()
            for i, meta in enumerate(batch["meta"]):
                h, w = meta["orig_hw"]
                item = {"meta": meta, "left": batch["left"][i, :, :h, :w]}
                if "disp" in batch:
                    item["disp"] = batch["disp"][i, :, :h, :w]
                    item["valid"] = batch["valid"][i, :, :h, :w]
                if pred is not None:
                    item["pred"] = pred[i, :, :h, :w]
                yield item


def safe_name(name: str) -> str:
    """A sample name as a file name (no folders)."""
    return str(name).replace(os.sep, "_").replace("/", "_").strip() or "sample"
