"""Allocation bombs: a tiny pickle must not make the restricted unpickler allocate more than a small multiple
of the file (issue 11: a 60-byte `list(range(N))` allocated 2.1 GB before being refused).

Every payload is refused with UnsafeCheckpointError (exit code 2) and the peak of Python allocations while
reading it stays under SMALL_MULTIPLE x the file size (plus a fixed allowance for the reader itself).
The sizes are chosen so that a broken guard costs a few hundred MB, not the machine.
"""
import collections
import pickle
import tracemalloc

import pytest
import torch

from stereo.checkpoints import read_checkpoint
from stereo.errors import UnsafeCheckpointError
from stereo.checkpoints.pickle_budget import MIN_ELEMENT_BUDGET

SMALL_MULTIPLE = 64
READER_ALLOWANCE = 4 << 20  # the reader's own bookkeeping, torch.load's first attempt


class Call:
    """Pickles as `fn(*args)`: what a crafted file can ask the unpickler to run."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


N = 10 ** 7
SHARED = list(range(20_000))
PAYLOADS = {
    "list(range(N))": Call(list, range(N)),
    "tuple(range(N))": Call(tuple, range(N)),
    "set(range(N))": Call(set, range(N)),
    "frozenset(range(N))": Call(frozenset, range(N)),
    "deque(range(N))": Call(collections.deque, range(N)),
    "OrderedDict(range(N))": Call(collections.OrderedDict, range(N)),
    "bytearray(range(N)) via list": Call(bytearray, Call(list, range(N))),
    "torch.Size(range(N))": Call(torch.Size, range(N)),
    "list(x) repeated over one memoised list": [Call(list, SHARED) for _ in range(1000)],
    "str(nested list)": Call(str, [SHARED] * 200),
    "list(inert module object)": Call(list, torch.nn.Identity()),
}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_allocation_bomb_is_refused_before_it_allocates(tmp_path, name):
    path = tmp_path / "bomb.pth"
    path.write_bytes(pickle.dumps(PAYLOADS[name], protocol=2))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeCheckpointError, match="refusing to load.*nothing was executed"):
            read_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"{name}: {size} B file, peak {peak / 1e6:.2f} MB")  # the test log keeps the measurement
    assert peak < SMALL_MULTIPLE * size + READER_ALLOWANCE, (name, size, peak)


def test_small_containers_still_load(tmp_path):
    """The budget leaves room for what real checkpoints copy (shape tuples, small config lists)."""
    path = tmp_path / "ok.pth"
    torch.save({"state_dict": {"model.w": torch.arange(4.0)}, "args": Call(list, range(100)),
                "shape": Call(torch.Size, [3, 4]), "names": Call(tuple, ["a", "b"])}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.meta["loader"] == "restricted_unpickler"  # torch.load(weights_only=True) refused the calls
    assert torch.equal(ckpt.state_dict["w"], torch.arange(4.0)) and ckpt.meta["args"] == list(range(100))
    assert MIN_ELEMENT_BUDGET > 100
