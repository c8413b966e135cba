"""How much memory a checkpoint pickle may make the restricted unpickler allocate.

Memory is bounded too. The pickle opcodes themselves build objects no larger than the bytes that spell
them, but a *call* can multiply: `list(range(2**31))` is 60 bytes of pickle and 77 GB of memory, and
`list(x)` repeated over one memoised list copies it again and again. So every container-building callable
(`list`, `tuple`, `set`, `frozenset`, `dict`, `OrderedDict`, `defaultdict`, `deque`, `bytes`, `bytearray`,
`torch.Size`) is charged the length of what it copies *before* it runs, against a per-file budget of
elements (:data:`ELEMENTS_PER_PICKLE_BYTE` x the pickle's size, at least :data:`MIN_ELEMENT_BUDGET`), and
an argument without a length (an iterator, a generator, an inert object) is refused outright. `str()` only
converts scalars (a container's repr can dwarf the container). Exceeding the budget is
`UnsafeCheckpointError`, raised before the allocation.
"""
from __future__ import annotations

from typing import Any

from stereo.errors import UnsafeCheckpointError

#: elements a pickle may copy through container-building calls, per byte of pickle (a real checkpoint
#: copies a few shape tuples: far below this); each element costs at most ~40 bytes (a pointer and an int)
ELEMENTS_PER_PICKLE_BYTE = 0.25
MIN_ELEMENT_BUDGET = 1 << 16


class AllocationBudget:
    """Elements the container-building calls of one file may still copy."""

    def __init__(self, source: str, pickle_bytes: int) -> None:
        self.source = source
        self.total = max(MIN_ELEMENT_BUDGET, int(pickle_bytes * ELEMENTS_PER_PICKLE_BYTE))
        self.used = 0

    def charge(self, what: str, n: int) -> None:
        self.used += n
        if self.used > self.total:
            raise UnsafeCheckpointError(
                f"{self.source}: refusing to load: {what} would copy {n} elements, beyond the budget of "
                f"{self.total} for this {self.total // max(ELEMENTS_PER_PICKLE_BYTE, 1e-9):.0f}-byte pickle "
                "(an allocation bomb, e.g. list(range(2**31))); nothing was executed. Re-save the weights as "
                "a state dict or safetensors from a trusted environment.")


#: container builders -> the position of the iterable argument they copy
_COPYING = {("builtins", "list"): 0, ("builtins", "tuple"): 0, ("builtins", "set"): 0,
            ("builtins", "frozenset"): 0, ("builtins", "dict"): 0, ("builtins", "bytes"): 0,
            ("builtins", "bytearray"): 0, ("collections", "OrderedDict"): 0,
            ("collections", "defaultdict"): 1, ("collections", "deque"): 0, ("torch", "Size"): 0}
_SCALARS = (str, bytes, int, float, bool, type(None))


def charged(key: tuple[str, str], fn: Any, budget: AllocationBudget) -> Any:
    """`fn` (a safe callable) wrapped so that what it copies is charged to `budget` before it runs."""
    name = ".".join(key)
    if key == ("builtins", "str"):
        def build_str(*args: Any, **kwargs: Any) -> Any:
            if any(not isinstance(a, _SCALARS) for a in args):
                kinds = ", ".join(type(a).__name__ for a in args)
                raise UnsafeCheckpointError(f"{budget.source}: refusing to load: str({kinds}) in the pickle; only "
                                            "scalars are converted; nothing was executed")
            return fn(*args, **kwargs)
        return build_str
    position = _COPYING.get(key)
    if position is None:
        return fn

    def build(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position and not isinstance(args[position], int):  # bytes(n): refused by the callee
            source = args[position]
            if not hasattr(source, "__len__"):
                raise UnsafeCheckpointError(
                    f"{budget.source}: refusing to load: {name}() over a {type(source).__name__} (no length: an "
                    "iterator or an inert object) could allocate without bound; nothing was executed")
            budget.charge(f"{name}()", len(source))
        budget.charge(f"{name}()", len(kwargs))
        return fn(*args, **kwargs)
    return build
