"""automl/tune/oom.py: the out-of-memory line from Ray's memory-monitor text and from errors inside a trial."""
import pytest

from automl.tune.oom import HINT, PEAK_KEY, looks_like_oom, meminfo, oom_reason, reason_from_exception, reason_from_ray

RAY_2_60 = ("OutOfMemoryError: 1 worker(s) were killed due to the node running low on memory. Memory on the node "
            "(IP: 192.0.2.2, ID: f24f) was 5.63GB used / 23.54GB limit (0.239052)\nOOM kill reason: Memory usage "
            "6017921024B exceeded threshold ... task name=ResourceTrainable.train, pid=23426, actual memory "
            "used=2.40GB, worker ID=1462")
RAY_OLDER = ("Task was killed due to the node running low on memory. Memory on the node (IP: 10.0.0.1, ID: ab) "
             "where the task (actor ID: cd, name=trial, pid=123, memory used=9.70GB) was running was 21.30GB / "
             "22.90GB (0.93), which exceeds the memory usage threshold of 0.92.")


@pytest.mark.parametrize("text, peak, total", [(RAY_2_60, 2.4, 23.54), (RAY_OLDER, 9.7, 22.9)])
def test_ray_memory_kills_read_peak_and_node_memory(text, peak, total):
    assert looks_like_oom(text)
    assert reason_from_ray(text, {}) == (f"out of memory: peak {peak:.1f} GB of {total:.1f} GB available — "
                                         "lower --max-concurrent or the crop")


def test_the_trials_own_peak_wins_when_it_is_larger():
    assert reason_from_ray(RAY_2_60, {PEAK_KEY: 7.25}).startswith("out of memory: peak 7.2 GB of 23.5 GB")


def test_a_plain_death_is_not_called_out_of_memory():
    assert not looks_like_oom("The actor died unexpectedly before finishing this task (SIGKILL)")


def test_errors_inside_the_trial():
    line = reason_from_exception(MemoryError())
    assert line.startswith("out of memory: peak ") and line.endswith(HINT)
    assert reason_from_exception(RuntimeError("shape mismatch")) is None
    assert "GPU memory" in reason_from_exception(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))


def test_unknown_numbers_still_make_one_line():
    assert oom_reason(None, None) == f"out of memory: peak unknown available — {HINT}"
    info = meminfo()
    assert info is None or 0 < info["available"] <= info["total"]
