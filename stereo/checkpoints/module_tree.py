"""Turn inert pickled objects (from `safe_pickle`) into data: a module tree's state dict, plain args.

A pickled `nn.Module` keeps its `__dict__`: `_parameters`, `_buffers`, `_non_persistent_buffers_set` and
`_modules` (children). `state_dict_of_pickled_module` walks them in the order `nn.Module.state_dict`
does (own parameters, own persistent buffers, then children depth-first), so keys and order equal what
the original module would have produced. `get_extra_state` cannot be honoured: the real class is never
imported (no stereo model defines extra state).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch

from stereo.errors import CheckpointFormatError
from stereo.checkpoints.pickle_policy import PickledObject

_MODULE_KEYS = ("_parameters", "_buffers", "_modules")


def is_pickled_module(obj: Any) -> bool:
    """True for a placeholder whose state looks like an `nn.Module` `__dict__`."""
    return isinstance(obj, PickledObject) and all(isinstance(obj.pickled_attrs.get(k), Mapping)
                                                  for k in _MODULE_KEYS)


def state_dict_of_pickled_module(root: Any, *, source: str) -> OrderedDict[str, torch.Tensor]:
    """Flat state dict (detached tensors, torch's key names and order) of a pickled module tree."""
    if not is_pickled_module(root):
        raise CheckpointFormatError(f"{source}: the pickled object is {root!r}, not an nn.Module; expected "
                                    "a whole pickled model or a dict with a state dict")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    try:
        _visit(root, "", out, ancestors=set(), source=source)
    except RecursionError:
        raise CheckpointFormatError(f"{source}: module tree nested too deeply for a real model; the pickle "
                                    "is corrupt or hostile") from None
    return out


def _visit(module: PickledObject, prefix: str, out: dict, *, ancestors: set[int], source: str) -> None:
    if id(module) in ancestors:  # torch would recurse forever; a real model tree has no cycles
        raise CheckpointFormatError(f"{source}: module {prefix.rstrip('.') or '<root>'} contains itself; "
                                    "the pickle is corrupt")
    attrs = module.pickled_attrs
    skip = attrs.get("_non_persistent_buffers_set") or set()
    for kind in ("_parameters", "_buffers"):
        for name, tensor in attrs[kind].items():
            if tensor is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointFormatError(
                    f"{source}: {kind[1:-1]} {prefix}{name} of {module.pickled_name} is "
                    f"{type(tensor).__name__}, not a tensor; the pickle is corrupt")
            out[prefix + name] = tensor.detach()
    for name, child in attrs["_modules"].items():
        if child is None:
            continue
        if not is_pickled_module(child):
            raise CheckpointFormatError(f"{source}: submodule {prefix}{name} is {child!r}, not an nn.Module")
        _visit(child, f"{prefix}{name}.", out, ancestors=ancestors | {id(module)}, source=source)


def pickled_class_name(obj: Any) -> str | None:
    return obj.pickled_name if isinstance(obj, PickledObject) else None


def plain_value(obj: Any, *, depth: int = 0) -> Any:
    """JSON-friendly copy of pickled settings (`model.args`): OmegaConf configs and argparse namespaces
    become dicts/lists, numpy scalars become Python numbers, tensors with <= 16 elements lists; anything
    else becomes a '<pickled ...>' string.
    """
    if depth > 32:
        return "<too deep>"
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, torch.Tensor):
        return obj.tolist() if obj.numel() <= 16 else f"<tensor {list(obj.shape)} {obj.dtype}>"
    if isinstance(obj, Mapping):
        return {str(k): plain_value(v, depth=depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [plain_value(v, depth=depth + 1) for v in obj]
    if isinstance(obj, PickledObject):
        return _plain_pickled(obj, depth)
    return repr(obj)


def _plain_pickled(obj: PickledObject, depth: int) -> Any:
    name, attrs = obj.pickled_name, obj.pickled_attrs
    if name == "argparse.Namespace":
        return plain_value(attrs, depth=depth + 1)
    if name.startswith("omegaconf.") and "_content" in attrs:  # DictConfig / ListConfig
        return plain_value(attrs["_content"], depth=depth + 1)
    if name.startswith("omegaconf.nodes.") and "_val" in attrs:
        return plain_value(attrs["_val"], depth=depth + 1)
    if name.endswith("multiarray.scalar") and len(obj.pickled_args) == 2:
        return _numpy_scalar(*obj.pickled_args) or repr(obj)
    return repr(obj)


def _numpy_scalar(dtype: Any, raw: Any) -> Any:
    # numpy pickles a scalar as scalar(dtype(code, False, True) + BUILD (3, byteorder, ...), raw bytes)
    if not (isinstance(dtype, PickledObject) and dtype.pickled_args and isinstance(dtype.pickled_args[0], str)
            and isinstance(raw, bytes)):
        return None
    import numpy as np  # only when a pickled numpy scalar is actually met

    state = dtype.pickled_state if isinstance(dtype.pickled_state, tuple) else ()
    order = state[1] if len(state) > 1 and state[1] in ("<", ">", "|", "=") else "="
    try:
        np_dtype = np.dtype(order + dtype.pickled_args[0])
    except TypeError:
        return None
    if np_dtype.kind not in "biufc" or np_dtype.itemsize != len(raw):  # never object/void dtypes
        return None
    return np.frombuffer(raw, dtype=np_dtype)[0].item()
