"""What a checkpoint pickle may reference, and the inert objects that stand in for pickled classes.

The safety argument in one place: a pickle can only call objects that `GlobalResolver.resolve` hands to
the unpickler (there is no attribute-access opcode), and it returns exactly three kinds of object:

1. `PICKLE_SAFE_CALLABLES` below: plain containers, torch dtypes/devices, and our own tensor rebuilders
   (written here, validating their arguments; torch's rebuilders are never called).
2. Inert placeholder *classes* (`PickledObject` subclasses) for classes under an allow-listed root such as
   `torch.nn` or the FFS research roots `core`, `Utils`, `dinov2`. They are made with `type()`, never
   imported; calling them only records the arguments and state.
3. Inert *references* (`PickledReference`) for functions under those roots or in the bare `torch`
   module (`torch._C._nn.gelu` stored as an attribute; `torch.load`). Calling one raises
   `UnsafeCheckpointError`: a real model pickle only stores function references, a malicious one calls
   them. Whether a name is a class is judged by its capital first letter; a wrong guess can only refuse
   a file, never run anything, because both kinds are inert.

Anything else (`os.system`, `builtins.eval`, `subprocess.Popen`, `torch.serialization.load`, ...) is
refused.

Memory is bounded too (pickle_budget.py): no call may copy more than a small multiple of the file.
"""
from __future__ import annotations

import _compat_pickle
import builtins
import collections
import functools
from typing import Any

import torch

from stereo.errors import CheckpointFormatError, UnsafeCheckpointError
from stereo.checkpoints.pickle_budget import AllocationBudget, charged

# Module roots whose classes become inert placeholders. Research FFS pickles use `core`, `Utils`,
# `foundation_stereo_ori` (an old alias of `core`), `depth_anything`, `dinov2`, `dpt`; timm supplies the
# EdgeNeXt student; TAO and OmegaConf objects appear as attributes (`model.args`) and in Lightning files.
PLACEHOLDER_ROOTS = (
    "torch.nn", "core", "Utils", "foundation_stereo_ori", "depth_anything", "dinov2", "dpt", "timm",
    "nvidia_tao_pytorch", "omegaconf", "typing",
    "torch._C._nn",  # function references only, e.g. `torch._C._nn.gelu` kept as `self.act`
)
# Roots/names where every global is treated as a class (calling it builds an inert placeholder):
# numpy scalars are rebuilt by calling `numpy._core.multiarray.scalar(dtype, bytes)`.
ALWAYS_CLASS = {("argparse", "Namespace"), ("functools", "partial"), ("pathlib", "PosixPath"),
                ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
                ("torch._C", "_VariableFunctionsClass")}  # holder of torch.tanh & co., see _getattr_inert
ALWAYS_CLASS_ROOTS = ("numpy",)


def python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol-2 pickles spell globals the Python 2 way (`__builtin__.eval`, `commands.Popen` for
    subprocess); map them as the stdlib unpickler's fix_imports would, so policy and messages see the
    real Python 3 object."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[module, name]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


class _Frozen:
    """Placeholders refuse attribute assignment: BUILD may only go through our `__setstate__`."""
    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"inert checkpoint object {self!r} is read-only (tried to set {name!r})")


class PickledObject(_Frozen):
    """Inert stand-in for an instance of a pickled class: keeps the constructor arguments and state.

    `pickled_attrs` is the pickled `__dict__` (for an `nn.Module`: `_parameters`, `_buffers`, `_modules`,
    ...), also readable as attributes (`obj.args`). Subclasses are created per pickled class name by
    `GlobalResolver`; `pickled_name` is "module.QualName". Slots only, so no pickled key can shadow a
    method; our own names start with `pickled_` to stay out of the way of the pickled ones.
    """
    __slots__ = ("pickled_args", "pickled_items", "pickled_kwargs", "pickled_mapping", "pickled_state")
    pickled_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledObject:  # noqa: PYI034
        self = object.__new__(cls)
        for slot, value in (("pickled_args", args), ("pickled_kwargs", kwargs), ("pickled_state", None),
                            ("pickled_items", []), ("pickled_mapping", {})):
            object.__setattr__(self, slot, value)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args); __new__ kept them
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(self.pickled_state, dict) and isinstance(state, dict):
            self.pickled_state.update(state)
        else:
            object.__setattr__(self, "pickled_state", state)

    # list/dict subclasses are rebuilt with APPENDS / SETITEMS
    def append(self, value: Any) -> None:
        self.pickled_items.append(value)

    def extend(self, values: Any) -> None:
        self.pickled_items.extend(values)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.pickled_mapping[key] = value

    @property
    def pickled_attrs(self) -> dict:
        """The instance `__dict__` as pickled; `(dict, slotstate)` states are merged."""
        state = self.pickled_state
        if isinstance(state, dict):
            return state
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("__", "pickled_")):  # our own slots are never looked up in the state
            raise AttributeError(name)
        attrs = self.pickled_attrs
        if name in attrs:
            return attrs[name]
        for registry in ("_parameters", "_buffers", "_modules"):  # like nn.Module.__getattr__
            if isinstance(attrs.get(registry), dict) and name in attrs[registry]:
                return attrs[registry][name]
        raise AttributeError(f"pickled {self.pickled_name} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<pickled {self.pickled_name}>"


class PickledReference(_Frozen):
    """Inert reference to a function named in the pickle; calling it is refused."""
    __slots__ = ("pickled_name", "source")

    def __init__(self, pickled_name: str, source: str) -> None:
        object.__setattr__(self, "pickled_name", pickled_name)
        object.__setattr__(self, "source", source)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f"{self.source}: refusing to load: the pickle calls {self.pickled_name}() while loading "
            "(a model pickle only stores function references); nothing was executed. Re-save the "
            "weights as a state dict or safetensors from a trusted environment.")

    def __repr__(self) -> str:
        return f"<pickled reference {self.pickled_name}>"


class StorageType:
    """What `torch.FloatStorage` & co. mean inside a checkpoint: the element dtype of a storage record."""
    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class LoadedStorage:
    """Raw bytes of one `data/<key>` record (an UntypedStorage) with the dtype the pickle declared."""
    __slots__ = ("dtype", "untyped")

    def __init__(self, untyped: torch.UntypedStorage, dtype: torch.dtype) -> None:
        self.untyped, self.dtype = untyped, dtype


# ---------------------------------------------------------------------------------------------------------
# Our own rebuild functions, under torch's pickled names. They only accept storages made by our
# persistent_load, ints and tuples; `Tensor.set_` checks that the view fits inside the storage.

def _ints(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or not all(type(v) is int for v in value):
        raise CheckpointFormatError(f"checkpoint tensor {what} must be a tuple of ints, got {value!r}; "
                                    "the file is corrupt or not a torch checkpoint")
    return tuple(value)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    if not isinstance(storage, LoadedStorage) or type(storage_offset) is not int:
        raise CheckpointFormatError(f"checkpoint tensor rebuilt from {type(storage).__name__} at offset "
                                    f"{storage_offset!r}; expected a storage record and an int offset")
    empty = torch.empty((0,), dtype=dtype or storage.dtype)
    try:
        return empty.set_(storage.untyped, storage_offset, _ints(size, "size"), _ints(stride, "stride"))
    except RuntimeError as exc:
        raise CheckpointFormatError(f"checkpoint tensor does not fit its storage record ({exc}); the file "
                                    "is corrupt or truncated") from None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None) -> torch.Tensor:
    # backward hooks are never restored: they would be pickled callables
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    _apply_metadata(tensor, metadata)
    return tensor


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       metadata=None) -> torch.Tensor:
    if not isinstance(dtype, torch.dtype):
        raise CheckpointFormatError(f"checkpoint tensor dtype {dtype!r} is not a torch.dtype")
    tensor = _rebuild_tensor(storage, storage_offset, size, stride, dtype=dtype)
    _apply_metadata(tensor, metadata)
    return tensor


def _apply_metadata(tensor: torch.Tensor, metadata: Any) -> None:
    # conj/neg view bits; torch validates the keys itself
    if metadata:
        if not isinstance(metadata, dict) or not all(isinstance(v, bool) for v in metadata.values()):
            raise CheckpointFormatError(f"checkpoint tensor metadata {metadata!r} is not a dict of flags")
        torch._utils.set_tensor_metadata(tensor, metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None) -> torch.nn.Parameter:
    # `state` holds Python attributes set on the parameter; a state dict has no use for them
    if not isinstance(data, torch.Tensor):
        raise CheckpointFormatError(f"checkpoint parameter data is {type(data).__name__}, not a tensor")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad) and data.is_floating_point())


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)


def _rebuild_from_type_v2(func, new_type, args, state) -> torch.Tensor:
    # plain tensors with Python attributes are pickled through this; only plain types are accepted
    if func not in _REBUILDERS or new_type not in (torch.Tensor, torch.nn.Parameter):
        raise UnsafeCheckpointError(f"torch._tensor._rebuild_from_type_v2 called with {func!r}, "
                                    f"{new_type!r}; only plain tensors and parameters are allowed")
    tensor = func(*args)
    if new_type is torch.nn.Parameter and not isinstance(tensor, torch.nn.Parameter):
        tensor = torch.nn.Parameter(tensor, requires_grad=False)
    return tensor


def _inert_class(cls: Any) -> type:
    if not (isinstance(cls, type) and issubclass(cls, PickledObject)):
        raise UnsafeCheckpointError(f"copyreg reconstructor called on {cls!r}; only pickled classes under "
                                    "the allow-listed roots can be instantiated")
    return cls


def _reconstructor(cls, base, state):  # protocol 0/1 object creation
    return _inert_class(cls).__new__(cls) if base is object else _inert_class(cls)(state)


def _newobj(cls, *args):
    return _inert_class(cls).__new__(cls, *args)


def _newobj_ex(cls, args, kwargs):
    return _inert_class(cls).__new__(cls, *args, **kwargs)


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    # protocol 2 stores `bytes` as _codecs.encode(str, 'latin1')
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"_codecs.encode called with ({type(text).__name__}, {encoding!r}); "
                                    "only the protocol-2 bytes encoding (str, 'latin1') is allowed")
    return text.encode("latin1")


def _sized(cls: type) -> Any:
    """`bytes(n)` / `bytearray(n)` would allocate n bytes of the file's choosing; only copies allowed."""
    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise UnsafeCheckpointError(f"{cls.__name__}({args[0]}) in the pickle would allocate memory of "
                                        "the file's choosing; refused, nothing was executed")
        return cls(*args)
    return build


def _getattr_inert(obj: Any, name: Any, *, source: str = "<checkpoint>") -> Any:
    # `torch.tanh` pickles as getattr(torch._C._VariableFunctionsClass, 'tanh'): allowed on inert
    # objects only, and the result is itself inert
    inert = isinstance(obj, PickledReference) or (isinstance(obj, type) and issubclass(obj, PickledObject))
    if inert and isinstance(name, str):
        return PickledReference(f"{obj.pickled_name}.{name}", source)
    raise UnsafeCheckpointError(f"{source}: refusing to load: the pickle calls builtins.getattr({obj!r}, "
                                f"{name!r}); only inert references may be looked up; nothing was executed")


_DTYPE_NAMES = ("float32", "float", "float64", "double", "float16", "half", "bfloat16", "int8", "uint8",
                "int16", "short", "int32", "int", "int64", "long", "bool", "complex32", "complex64",
                "cfloat", "complex128", "cdouble", "uint16", "uint32", "uint64", "float8_e4m3fn",
                "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
_STORAGE_DTYPES = {"Float": torch.float32, "Double": torch.float64, "Half": torch.float16,
                   "BFloat16": torch.bfloat16, "Long": torch.int64, "Int": torch.int32, "Short": torch.int16,
                   "Char": torch.int8, "Byte": torch.uint8, "Bool": torch.bool,
                   "ComplexFloat": torch.complex64, "ComplexDouble": torch.complex128, "Untyped": torch.uint8}


def _safe_callables() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {}
    for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "bool", "str", "complex",
                 "slice", "range", "object"):
        table["builtins", name] = getattr(builtins, name)
    table["builtins", "bytes"], table["builtins", "bytearray"] = _sized(bytes), _sized(bytearray)
    table["builtins", "long"], table["builtins", "unicode"] = int, str
    table["builtins", "getattr"] = _getattr_inert  # GlobalResolver binds the file name into it
    table["_codecs", "encode"] = _latin1_bytes
    for name in ("OrderedDict", "defaultdict", "deque"):
        table["collections", name] = getattr(collections, name)
    table["copyreg", "_reconstructor"] = _reconstructor
    table["copyreg", "__newobj__"] = _newobj
    table["copyreg", "__newobj_ex__"] = _newobj_ex
    for name in _DTYPE_NAMES:
        if isinstance(getattr(torch, name, None), torch.dtype):
            table["torch", name] = getattr(torch, name)
    for prefix, dtype in _STORAGE_DTYPES.items():
        table["torch", f"{prefix}Storage"] = StorageType(dtype)
    for name in ("contiguous_format", "channels_last", "channels_last_3d", "preserve_format", "strided"):
        table["torch", name] = getattr(torch, name)
    table["torch", "Size"], table["torch", "device"] = torch.Size, torch.device
    table["torch", "Tensor"] = table["torch._tensor", "Tensor"] = torch.Tensor
    table["torch.nn.parameter", "Parameter"] = torch.nn.Parameter
    for fn in _REBUILDERS:
        table["torch._utils", fn.__name__] = fn
    table["torch._utils", "_rebuild_parameter_with_state"] = _rebuild_parameter
    table["torch._tensor", "_rebuild_from_type_v2"] = _rebuild_from_type_v2
    return table


PICKLE_SAFE_CALLABLES: dict[tuple[str, str], Any] = _safe_callables()


def _is_class_name(name: str) -> bool:
    last = name.rsplit(".", 1)[-1].lstrip("_")
    return bool(last) and last[0].isupper()


def global_verdict(module: str, name: str) -> str:
    """'safe', 'class' (inert placeholder), 'reference' (inert, uncallable) or 'refused'."""
    module, name = python3_name(module, name)
    if (module, name) in PICKLE_SAFE_CALLABLES:
        return "safe"
    if (module, name) in ALWAYS_CLASS or _under(module, ALWAYS_CLASS_ROOTS):
        return "class"
    if _under(module, PLACEHOLDER_ROOTS) or module == "torch":
        return "class" if _is_class_name(name) else "reference"
    return "refused"


class GlobalResolver:
    """Per-file `find_class`: one placeholder class per pickled name, so identity checks still work."""

    def __init__(self, source: str, pickle_bytes: int = 0) -> None:
        self.source = source
        self._classes: dict[str, type] = {}
        self.budget = AllocationBudget(source, pickle_bytes)

    def refusal(self, names: list[str]) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(
            f"{self.source}: refusing to load: the pickle references {', '.join(names)}, not on the "
            "allow-list in stereo/checkpoints/pickle_policy.py; nothing was executed. Re-save the "
            "weights as a state dict or safetensors from a trusted environment.")

    def resolve(self, module: str, name: str) -> Any:
        verdict = global_verdict(module, name)
        module, name = python3_name(module, name)
        full = f"{module}.{name}"
        if verdict == "safe":
            if (module, name) == ("builtins", "getattr"):
                return functools.partial(_getattr_inert, source=self.source)
            return charged((module, name), PICKLE_SAFE_CALLABLES[module, name], self.budget)
        if verdict == "class":
            if full not in self._classes:
                self._classes[full] = type(name.rsplit(".", 1)[-1], (PickledObject,),
                                           {"__slots__": (), "pickled_name": full, "__module__": module})
            return self._classes[full]
        if verdict == "reference":
            return PickledReference(full, self.source)
        raise self.refusal([full])

