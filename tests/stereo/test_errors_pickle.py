"""Errors cross process boundaries (Ray trial workers, multiprocessing data loaders) by pickle: each of
ours must come back the same type with the same message and exit code, or Ray prints a TypeError
traceback instead of the user's one-line reason."""
from __future__ import annotations

import pickle

import pytest

from stereo.actions.runner import ActionError
from stereo.config.errors import Problem, SpecError
from stereo.data.errors import DataError
from stereo.errors import exit_code_of
from stereo.checkpoints.errors import CheckpointMismatchError, CheckpointNotFoundError


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
