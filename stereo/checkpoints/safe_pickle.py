"""Read a torch checkpoint pickle without executing it: `torch.save` zip archives and legacy files.

Used for files `torch.load(weights_only=True)` refuses because they pickle whole modules, like the FFS
`model_best_bp2_serialize.pth`. Pickled classes come back as inert `PickledObject`s (see
`pickle_policy.py` for what may be referenced and why that is safe); `module_tree.py` turns a pickled
`nn.Module` into its state dict.

Two guards, both before anything runs: the whole pickle is scanned for the globals it names and every
refused one is reported at once; then the unpickler's `find_class` enforces the same policy on what is
actually resolved (the scan cannot follow every stack trick, the unpickler can).
"""
from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from stereo.errors import CheckpointError, CheckpointFormatError, CheckpointNotFoundError
from stereo.checkpoints.pickle_policy import (
    GlobalResolver,
    LoadedStorage,
    StorageType,
    global_verdict,
    python3_name,
)

# `torch.save(..., _use_new_zipfile_serialization=False)` starts with these two pickled ints
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}
_NO_PUSH_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "FRAME", "PROTO"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, resolver: GlobalResolver, storages: Callable[[Any], Any]) -> None:
        super().__init__(file)
        self._resolver, self._storages = resolver, storages

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise self._resolver.refusal([f"{module!r}.{name!r}"])
        return self._resolver.resolve(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._storages(pid)


def referenced_globals(stream: bytes | BinaryIO) -> list[tuple[str, str]]:
    """(module, name) of every GLOBAL/INST/STACK_GLOBAL in one pickle, reading it without running it.

    For STACK_GLOBAL the two strings are taken from the previous pushes (literal or memo); that is how
    every pickler emits them. Stops at the pickle's STOP opcode.
    """
    if isinstance(stream, (bytes, bytearray)):
        stream = io.BytesIO(stream)
    memo: dict[int, Any] = {}
    recent: list[Any] = [None, None]
    found: list[tuple[str, str]] = []
    for op, arg, _ in pickletools.genops(stream):
        if op.name in ("GLOBAL", "INST"):
            module, name = arg.split(" ", 1)
            found.append((module, name))
        elif op.name == "STACK_GLOBAL" and all(isinstance(v, str) for v in recent[-2:]):
            found.append((recent[-2], recent[-1]))
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = recent[-1]
        elif op.name == "MEMOIZE":
            memo[len(memo)] = recent[-1]
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            recent = [recent[-1], memo.get(arg)]
        elif op.name not in _NO_PUSH_OPS:
            recent = [recent[-1], arg if op.name in _STRING_OPS else None]
    return found


def _check_globals(stream: bytes | BinaryIO, resolver: GlobalResolver) -> None:
    try:
        names = referenced_globals(stream)
    except (ValueError, EOFError, struct.error) as exc:
        raise CheckpointFormatError(f"{resolver.source}: the pickle inside is malformed ({exc}); the file is "
                                    "corrupt or truncated, re-download or re-save it") from None
    refused = [".".join(python3_name(m, n)) for m, n in names if global_verdict(m, n) == "refused"]
    if refused:
        raise resolver.refusal(list(dict.fromkeys(refused)))


def _unpickle(stream: BinaryIO, resolver: GlobalResolver, storages: Callable[[Any], Any]) -> Any:
    try:
        return _RestrictedUnpickler(stream, resolver, storages).load()
    except CheckpointError:
        raise
    # anything the C unpickler or a rebuild raises on a damaged file
    except Exception as exc:  # noqa: BLE001
        raise CheckpointFormatError(f"{resolver.source}: cannot unpickle ({type(exc).__name__}: {exc}); "
                                    "the file is corrupt, truncated or not a torch checkpoint") from None


def _storage_pid(pid: Any, source: str, length: int) -> tuple:
    if (not isinstance(pid, tuple) or len(pid) != length or pid[0] != "storage"
            or not isinstance(pid[1], StorageType) or not isinstance(pid[2], str)
            or type(pid[4]) is not int or pid[4] < 0):
        raise CheckpointFormatError(f"{source}: unexpected persistent id {pid!r} in the pickle; expected "
                                    "('storage', <dtype>, key, location, numel) as torch.save writes it")
    return pid


def _untyped(raw: bytes, dtype: torch.dtype, swap: bool) -> torch.UntypedStorage:
    storage = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
    if swap and dtype.itemsize > 1:
        storage.byteswap(dtype)
    return storage


def load_pickled_checkpoint(path: str | Path) -> Any:
    """Unpickle a torch checkpoint file with the restricted policy; returns inert objects and tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: checkpoint file not found; check the path")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):
        return _load_zip(path)
    if head[:1] == b"\x80":
        return _load_legacy(path)
    raise CheckpointFormatError(f"{path}: not a torch.save file (starts with {head!r}); expected a zip "
                                "archive or a legacy pickle")


def _load_zip(path: Path) -> Any:
    resolver = GlobalResolver(str(path), path.stat().st_size)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointFormatError(f"{path}: corrupt or truncated zip archive ({exc}); re-download or "
                                    "re-save the checkpoint") from None
    with archive:
        names = set(archive.namelist())
        if any(n.endswith("/constants.pkl") for n in names):
            raise CheckpointFormatError(f"{path}: is a TorchScript archive (torch.jit.save), not a "
                                        "checkpoint; save model.state_dict() instead")
        pickles = sorted(n for n in names if n.endswith("/data.pkl") and n.count("/") == 1)
        if len(pickles) != 1:
            raise CheckpointFormatError(f"{path}: zip archive without exactly one '<name>/data.pkl' record "
                                        f"(found {pickles}); not written by torch.save")
        prefix = pickles[0][: -len("data.pkl")]
        packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
        if packed:  # torch stores records uncompressed; a compressed one could be a decompression bomb
            raise CheckpointFormatError(f"{path}: compressed records {packed[:3]} in a torch archive; torch "
                                        "never compresses them, so the file was rewritten or crafted")
        swap = prefix + "byteorder" in names and archive.read(prefix + "byteorder").decode() != "little"
        try:
            data = archive.read(pickles[0])
        except (zipfile.BadZipFile, zlib.error, OSError) as exc:
            raise CheckpointFormatError(f"{path}: corrupt record {pickles[0]} ({exc}); "
                                        "re-download it") from None
        _check_globals(data, resolver)
        cache: dict[str, torch.UntypedStorage] = {}

        def storages(pid: Any) -> LoadedStorage:
            _, stype, key, _location, numel = _storage_pid(pid, str(path), 5)
            if key not in cache:
                record = f"{prefix}data/{key}"
                try:
                    raw = archive.read(record)
                except KeyError:
                    raise CheckpointFormatError(f"{path}: record {record} is missing; the archive is "
                                                "incomplete, re-download it") from None
                except (zipfile.BadZipFile, zlib.error, OSError) as exc:
                    raise CheckpointFormatError(f"{path}: corrupt record {record} ({exc}); re-download "
                                                "it") from None
                if len(raw) != numel * stype.dtype.itemsize:
                    raise CheckpointFormatError(f"{path}: record {record} has {len(raw)} bytes, the pickle "
                                                f"declares {numel} x {stype.dtype}; the file is corrupt")
                cache[key] = _untyped(raw, stype.dtype, swap)
            return LoadedStorage(cache[key], stype.dtype)

        return _unpickle(io.BytesIO(data), resolver, storages)


def _load_legacy(path: Path) -> Any:
    data = path.read_bytes()
    resolver = GlobalResolver(str(path), len(data))
    stream = io.BytesIO(data)

    def no_storage(pid: Any) -> Any:
        raise CheckpointFormatError(f"{path}: persistent id {pid!r} in a legacy header; file is corrupt")

    header = [_unpickle(stream, resolver, no_storage) for _ in range(3)]
    if header[0] != LEGACY_MAGIC_NUMBER or header[1] != LEGACY_PROTOCOL_VERSION:
        raise CheckpointFormatError(f"{path}: a pickle, but not a torch.save file (magic {header[0]!r}); "
                                    "only torch checkpoints are read")
    swap = isinstance(header[2], dict) and header[2].get("little_endian") is False
    start = stream.tell()
    _check_globals(stream, resolver)
    stream.seek(start)
    roots: dict[str, tuple[torch.UntypedStorage, torch.dtype, int]] = {}

    def storages(pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] == "module":  # legacy saves record module classes
            return pid[1]
        _, stype, key, _location, numel, view = _storage_pid(pid, str(path), 6)
        if key not in roots:
            if numel * stype.dtype.itemsize > len(data):  # the bytes must be in the file: no huge allocation
                raise CheckpointFormatError(f"{path}: storage {key!r} declares {numel} x {stype.dtype}, more "
                                            "than the file holds; the file is corrupt or truncated")
            roots[key] = (torch.UntypedStorage(numel * stype.dtype.itemsize), stype.dtype, numel)
        root = roots[key][0]
        if view is None:
            return LoadedStorage(root, stype.dtype)
        _view_key, offset, size = view
        begin = offset * stype.dtype.itemsize
        return LoadedStorage(root[begin: begin + size * stype.dtype.itemsize], stype.dtype)

    result = _unpickle(stream, resolver, storages)
    keys = _unpickle(stream, resolver, no_storage)
    # after the pickle: per storage an int64 element count, then the raw bytes
    for key in keys if isinstance(keys, list) else []:
        if key not in roots:
            raise CheckpointFormatError(f"{path}: storage {key!r} listed but never used; file is corrupt")
        storage, dtype, numel = roots[key]
        count_bytes = stream.read(8)
        count = struct.unpack("<q" if not swap else ">q", count_bytes)[0] if len(count_bytes) == 8 else -1
        raw = stream.read(max(count, 0) * dtype.itemsize)
        if count != numel or len(raw) != numel * dtype.itemsize:
            raise CheckpointFormatError(f"{path}: storage {key!r} data is truncated or has the wrong size "
                                        f"({count} vs {numel} elements); re-download the file")
        if raw:
            storage.copy_(_untyped(raw, dtype, swap))
    return result
