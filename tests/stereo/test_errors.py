"""stereo.errors: one hierarchy, each class with its exit code.

Errors also cross process boundaries (Ray trial workers, multiprocessing data loaders) by pickle: each of
ours must come back the same type with the same message and exit code, or Ray prints a TypeError
traceback instead of the user's one-line reason."""
from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import stereo
from stereo.config.errors import Problem, SpecError
from stereo.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    ActionError,
    BadInputError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    DataError,
    StereoError,
    exit_code_of,
)

#: a file MLflow executes as "model from code": importing it registers a model, so it is not imported here
_NOT_IMPORTED = ("stereo.tracking.pyfunc_entry",)


def _stereo_exceptions() -> list[type]:
    found = set()
    for info in pkgutil.walk_packages(stereo.__path__, "stereo."):
        if info.name in _NOT_IMPORTED:
            continue
        module = importlib.import_module(info.name)
        found |= {obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, BaseException) and obj.__module__.startswith("stereo")}
    return sorted(found, key=lambda c: c.__qualname__)


def test_every_stereo_exception_is_a_stereo_error_with_its_own_exit_code():
    classes = _stereo_exceptions()
    assert {c.__name__ for c in classes} >= {"StereoError", "BadInputError", "SpecError", "DataError",
                                             "CheckpointError", "ExportError", "NonFiniteLossError"}
    for cls in classes:
        assert issubclass(cls, StereoError), f"{cls.__module__}.{cls.__qualname__} is outside stereo.errors' tree"
        assert "exit_code" in vars(cls), f"{cls.__qualname__} must state its exit_code on the class"
        assert cls.exit_code in (EXIT_FAILURE, EXIT_BAD_INPUT)
        assert cls.__module__ in ("stereo.errors", "stereo.config.errors"), f"{cls.__qualname__}: errors live " \
            "in stereo/errors.py (SpecError, with its Problems, in stereo/config/errors.py)"


def test_bad_input_exits_2_and_everything_else_1_by_type():
    assert exit_code_of(DataError("x")) == exit_code_of(BadInputError("x")) == EXIT_BAD_INPUT
    assert exit_code_of(CheckpointNotFoundError("x")) == exit_code_of(FileNotFoundError("x")) == EXIT_BAD_INPUT
    assert exit_code_of(StereoError("x")) == exit_code_of(RuntimeError("x")) == EXIT_FAILURE
    assert exit_code_of(ActionError("train", "bad input", "x", EXIT_BAD_INPUT)) == EXIT_BAD_INPUT


def _spec_error():
    return SpecError([Problem(key="train.optim.lr", message="must be > 0", value=-1.0, file="spec.yaml", line=3)])


@pytest.mark.parametrize("make", [
    lambda: ActionError("train", "bad input", "dataset.train_dataset.data_sources[0].data_file: missing", 2),
    lambda: ActionError("evaluate", "runtime error", "boom"),
    _spec_error,
    lambda: DataError("train.txt:3: expected 3 columns, got 2"),
    lambda: CheckpointNotFoundError("/x/model.pth does not exist"),
    lambda: CheckpointMismatchError("model_type FoundationStereo vs FastFoundationStereo"),
], ids=["action-bad-input", "action-failure", "spec", "data", "ckpt-missing", "ckpt-mismatch"])
def test_errors_survive_pickling(make):
    err = make()
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err) and exit_code_of(back) == exit_code_of(err)
    if isinstance(err, ActionError):
        assert (back.action, back.category, back.message) == (err.action, err.category, err.message)
    if isinstance(err, SpecError):
        assert [p.render() for p in back.problems] == [p.render() for p in err.problems]
