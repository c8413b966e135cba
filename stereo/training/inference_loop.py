"""The no-grad prediction loop shared by the evaluate and inference actions (and training validation).

Batches are collated to the largest image (bottom/right padding). The network never sees that padding:
:func:`predict_by_size` runs the samples of each size (`meta['orig_hw']`) together, cropped to that size,
so a sample's prediction — and its metrics — do not depend on `batch_size` or on which images share its
batch (KITTI mixes 375x1242 and 376x1241). The network pads each group to a multiple of 32 itself, as it
would a single image. Every prediction is cropped back to its sample's size before anyone sees it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from stereo.training.weights import load_weights


def inference_device(gpu_ids: Sequence[int] = (0,)) -> torch.device:
    """cuda:<first of gpu_ids> when CUDA is available (else the CPU); an index the host lacks is bad input."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = int(gpu_ids[0]) if gpu_ids else 0
    if index >= torch.cuda.device_count():
        from stereo.errors import BadInputError

        raise BadInputError(f"gpu_ids={list(gpu_ids)} names GPU {index}, but this host has "
                            f"{torch.cuda.device_count()} (check CUDA_VISIBLE_DEVICES); use gpu_ids: [0]")
    return torch.device("cuda", index)


def load_model(model_cfg, checkpoint: str | os.PathLike, *, what: str,
               device: torch.device | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build `model_cfg`, load `checkpoint` strictly, eval mode on `device`; returns (model, meta)."""
    from stereo.errors import BadInputError
    from stereo.models import build_model

    if not checkpoint:
        raise BadInputError(f"{what} is empty; set it to a checkpoint (.safetensors/.pth/.ckpt), e.g. "
                            "<results_dir>/train/dn_model_best.safetensors.")
    model = build_model(model_cfg)
    meta = load_weights(model, checkpoint, model_type=model_cfg.model_type, what=what)
    return model.eval().to(device or inference_device()), meta


def sample_sizes(metas: Any, batch: int, hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Each sample's own (H, W) from its `meta['orig_hw']`; the collated `hw` where a meta has none."""
    if not isinstance(metas, Sequence) or len(metas) != batch:
        return [hw] * batch
    return [tuple(int(v) for v in m["orig_hw"]) if isinstance(m, Mapping) and "orig_hw" in m else hw
            for m in metas]


def predict_by_size(model, left: torch.Tensor, right: torch.Tensor, metas: Any = None,
                    **kwargs: Any) -> torch.Tensor:
    """`model(left, right, **kwargs)` for a collated batch without letting collate padding reach the network.

    Samples are grouped by their own size; each group runs on its crop. The result is [B,1,H,W] at the
    collated size, zero outside each sample's own region (where `valid` is 0 as well)."""
    b, _, h, w = left.shape
    sizes = sample_sizes(metas, b, (h, w))
    if all(size == (h, w) for size in sizes):
        return model(left, right, **kwargs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(size, []).append(i)
    out = None
    for (gh, gw), idx in groups.items():
        index = torch.as_tensor(idx, device=left.device)
        pred = model(left[index, :, :gh, :gw], right[index, :, :gh, :gw], **kwargs)
        if out is None:
            out = pred.new_zeros((b, pred.shape[1], h, w))
        out[index, :, :gh, :gw] = pred.to(out.dtype)
    return out


def samples(loader, model: torch.nn.Module | None = None,
            device: torch.device | None = None) -> Iterator[dict[str, Any]]:
    """Per sample: {'meta', 'left' [3,H,W], 'disp'/'valid' [1,H,W] when GT exists, 'pred' [1,H,W] when a
    model is given}, all CPU float32 at the sample's own size."""
    device = device or inference_device()
    with torch.no_grad():
        for batch in loader:
            pred = None
            if model is not None:
                pred = predict_by_size(model, batch["left"].to(device), batch["right"].to(device), batch["meta"],
                                       test_mode=True).float().cpu()
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
