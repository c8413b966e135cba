"""Fixtures for spec tests: TAO FFS templates with their <placeholders> filled, and a spec writer."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest


def fill_template(text: str, tmp_path: Path) -> str:
    text = text.replace("<dataset_name>", "Middlebury")
    text = text.replace("<bp2_ckpt_path>", str(tmp_path / "model_best_bp2_serialize.pth"))
    return re.sub(r"<(\w+)>", lambda m: str(tmp_path / m.group(1)), text)


@pytest.fixture
def filled_template(tao_skill_dir: Path, tmp_path: Path):
    """filled_template('train') -> path of spec_template_train.yaml with placeholders filled."""
    def make(action: str) -> Path:
        text = (tao_skill_dir / "references" / f"spec_template_{action}.yaml").read_text()
        out = tmp_path / f"{action}.yaml"
        out.write_text(fill_template(text, tmp_path))
        return out
    return make


@pytest.fixture
def write_spec(tmp_path: Path):
    """write_spec('''yaml''') -> path of a spec file with that (dedented) content."""
    def make(text: str, name: str = "spec.yaml") -> Path:
        out = tmp_path / name
        out.write_text(textwrap.dedent(text).lstrip("\n"))
        return out
    return make
