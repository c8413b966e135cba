"""Pure helpers of the tracking interface."""
from __future__ import annotations

import pytest

from stereo.tracking import check_key, flatten_dict, stringify


def test_flatten_nested_dicts_and_lists_of_dicts():
    spec = {"model": {"model_type": "FoundationStereo", "train_iters": 22},
            "dataset": {"train": {"data_sources": [{"name": "a", "file": "x.txt"}], "crop": [320, 736]}},
            "empty": {}, "results_dir": None}
    assert flatten_dict(spec) == {"model.model_type": "FoundationStereo", "model.train_iters": 22,
                                  "dataset.train.data_sources.0.name": "a",
                                  "dataset.train.data_sources.0.file": "x.txt",
                                  "dataset.train.crop": [320, 736], "empty": {}, "results_dir": None}


def test_stringify_containers_as_json():
    assert stringify([320, 736]) == "[320, 736]"
    assert stringify({"a": 1}) == '{"a": 1}'
    assert stringify(True) == "True" and stringify(None) == "None" and stringify(1e-4) == "0.0001"


@pytest.mark.parametrize("key", ["val/epe", "model.max_disparity", "a b:c-d_e"])
def test_legal_keys_pass(key):
    assert check_key(key, "metric") == key


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../x", "a/../b", "bad%key", "x" * 251])
def test_illegal_keys_raise_naming_the_key(key):
    with pytest.raises(ValueError, match="key"):
        check_key(key, "metric")
