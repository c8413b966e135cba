"""automl/tune/data_parallel.py without Ray: the channel between rank 0 and the Tune trial, the stop agreement
between ranks, and the Trainer settings a Ray Train worker gets (the e2e run is
tests/automl/e2e/test_data_parallel_trial.py)."""
import threading
from types import SimpleNamespace

import pytest

from automl.tune.data_parallel import _Channel, _ray_settings, _worker_error, stop_sync_class


def _report_in_thread(channel, metrics):
    answer = {}
    thread = threading.Thread(target=lambda: answer.setdefault("stop", channel.report(metrics)), daemon=True)
    thread.start()
    return thread, answer


@pytest.mark.parametrize("stop", [False, True])
def test_rank_0_waits_for_the_trials_answer(stop):
    channel = _Channel()
    thread, answer = _report_in_thread(channel, {"val/epe": 1.5})
    seq, metrics = channel.next(timeout=10)
    assert metrics == {"val/epe": 1.5} and thread.is_alive()  # blocked until Tune has answered
    channel.answer(seq, stop)
    thread.join(timeout=10)
    assert answer == {"stop": stop}
    assert channel.next(timeout=0.01) is None


def test_an_interrupted_sweep_releases_a_waiting_report_as_a_stop():
    channel = _Channel()
    thread, answer = _report_in_thread(channel, {"val/epe": 1.0})
    assert channel.next(timeout=10) is not None and not channel.interrupted()
    channel.interrupt()
    thread.join(timeout=10)
    assert answer == {"stop": True} and channel.interrupted()


class _Strategy:
    def __init__(self, others_stop: bool):
        self.others_stop = others_stop

    def reduce_boolean_decision(self, decision, all=True):  # noqa: A002 - Lightning's name
        assert all is False  # any rank asking to stop stops them all
        return decision or self.others_stop


@pytest.mark.parametrize("mine, others, expected", [(False, False, False), (True, False, True),
                                                    (False, True, True)])
def test_every_rank_stops_when_one_asks(mine, others, expected):
    trainer = SimpleNamespace(should_stop=mine, strategy=_Strategy(others))
    stop_sync_class()().on_train_epoch_end(trainer, None)
    assert trainer.should_stop is expected


def test_a_ray_train_worker_gets_rays_strategy_and_environment():
    pytest.importorskip("ray.train.lightning")
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    settings = _ray_settings(cuda=False, find_unused_parameters=True)
    assert isinstance(settings["strategy"], RayDDPStrategy) and settings["strategy"]._process_group_backend == "gloo"
    assert isinstance(settings["plugins"][0], RayLightningEnvironment)
    assert (settings["devices"], settings["num_nodes"]) == ("auto", 1)


def test_external_processes_replace_the_ddp_settings_only_for_more_than_one_process():
    from stereo.config.train import TrainConfig
    from stereo.training.trainer import external_processes, trainer_settings

    marker = {"strategy": "theirs", "devices": "auto"}
    external_processes(lambda **kw: marker)
    try:
        assert trainer_settings(TrainConfig(num_gpus=2), cuda_available=False)["strategy"] == "theirs"
        assert trainer_settings(TrainConfig(num_gpus=1), cuda_available=False)["strategy"] == "auto"
    finally:
        external_processes(None)
    assert trainer_settings(TrainConfig(num_gpus=2), cuda_available=False)["strategy"] != "theirs"


def test_a_worker_failure_is_one_line():
    assert _worker_error(RuntimeError("Traceback\n  ...\nValueError: bad thing\n")) == \
        "data-parallel workers failed: ValueError: bad thing"
