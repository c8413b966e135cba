"""`depth_net flow`'s plan and up-front checks on NVIDIA's own FFS templates (one spec per action, as a TAO
user has them): filled templates pass with nothing yet trained (what a parent will write is not required),
a broken step is reported with the step's name and nothing is run; bad flow files are one line, exit 2."""
from __future__ import annotations

import re

import pytest
import yaml

from stereo.actions.chain import load_flow, validate_flow
from stereo.cli import main
from stereo.data.synthetic import generate


def _fill(template, out, values):
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"<{key}>", value)
    out.write_text(re.sub(r"<\w+>", "/not/yet", text))  # <bp2_ckpt_path>: a parent step will give it
    return out.name


@pytest.fixture()
def templates(tmp_path, tao_skill_dir):
    refs = tao_skill_dir / "references"
    data = {}
    for split, seed, cols in (("train", 0, 3), ("val", 1, 3), ("eval", 2, 3), ("infer", 3, 2)):
        ann = generate(tmp_path / "data" / split, "generic", n=2, height=64, width=128, max_disparity=24,
                       seed=seed, columns=cols)
        data[f"{split}_data_root"] = str(ann.rename(ann.parent / "annotations.txt").parent)
    values = {"out_dir": str(tmp_path / "unused"), "dataset_name": "GenericDataset", **data}
    steps = {name: {"spec": _fill(refs / f"spec_template_{name}.yaml", tmp_path / f"{name}.yaml", values)}
             for name in ("train", "evaluate", "inference", "export")}
    deploy = _fill(refs / "spec_template_deploy.yaml", tmp_path / "deploy.yaml", values)
    data_files = [f"dataset.infer_dataset.data_sources[0].data_file={data['infer_data_root']}/annotations.txt",
                  f"dataset.test_dataset.data_sources[0].data_file={data['eval_data_root']}/annotations.txt"]
    for name in ("gen_trt_engine", "deploy_inference", "deploy_evaluate"):
        steps[name] = {"spec": deploy, "overrides": data_files}
    steps["train"]["overrides"] = ["train.pretrained_model_path=''"]  # from scratch: the test has no bp2 file
    return tmp_path, steps


def test_nvidia_templates_pass_the_up_front_check_before_anything_exists(templates):
    tmp_path, steps = templates
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({"results_dir": "job", "steps": steps}))
    plan = load_flow(str(flow))
    assert [s.name for s in plan.steps][-2:] == ["deploy_inference", "deploy_evaluate"]
    assert plan.results_dir == tmp_path / "job" and plan.steps[0].spec == tmp_path / "train.yaml"
    assert validate_flow(plan) == []


def test_every_broken_step_is_reported_before_any_step_runs(templates, capsys):
    tmp_path, steps = templates
    steps["evaluate"]["overrides"] = ["evaluate.batchsize=1"]
    steps["deploy_evaluate"]["overrides"] = steps["deploy_evaluate"]["overrides"] + [
        "dataset.test_dataset.data_sources[0].data_file=/no/such.txt"]
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({"results_dir": "job", "steps": steps}))
    assert main(["flow", "-e", str(flow)]) == 2
    err = capsys.readouterr().err.splitlines()
    steps_named = {line.split(":")[0] for line in err}
    assert steps_named == {"flow step evaluate", "flow step deploy_evaluate"}, err
    assert not (tmp_path / "job").exists()


@pytest.mark.parametrize("flow, message", [
    ({"spec": "x.yaml"}, "results_dir: is missing"),
    ({"results_dir": "job"}, "steps.train.spec: is missing and no flow-level spec is set"),
    ({"results_dir": "job", "spec": "x.yaml", "stepz": {}}, "stepz: is not a flow key"),
    ({"results_dir": "job", "spec": "x.yaml", "steps": {"quantize": {}}}, "['quantize'] is not a step"),
    ({"results_dir": "job", "spec": "nope.yaml"}, "spec: "),
    ({"results_dir": "job", "spec": "x.yaml", "checkpoint": "no.pth"}, "checkpoint: "),
    ({"results_dir": "job", "spec": "x.yaml", "overrides": "a=1"}, "is not a list of key=value strings"),
])
def test_a_bad_flow_file_is_one_line_exit_2(tmp_path, capsys, flow, message):
    (tmp_path / "x.yaml").write_text("results_dir: r\n")
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(flow))
    assert main(["flow", "-e", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(path) in err[0], err
