"""tests/fixtures/tao_skill_ffs: the committed copy of TAO's FFS skill stays byte-for-byte TAO's."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs"
SKILL = "tao-train-fast-foundation-stereo"


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_fixture_holds_the_skill_its_licence_and_provenance():
    files = _files(FIXTURE)
    assert {"LICENSE", "README.md", f"{SKILL}/references/skill_info.yaml",
            f"{SKILL}/references/spec_template_train.yaml", f"{SKILL}/schemas/train.schema.json"} <= set(files)
    assert b"Apache License" in files["LICENSE"] and b"Version 2.0" in files["LICENSE"]
    assert b"byte-for-byte copy" in files["README.md"] and b"tao-skill-bank" in files["README.md"]


@pytest.mark.shared
def test_fixture_equals_the_shared_reference(reference_dir):
    bank = reference_dir / "tao-skill-bank"
    assert _files(FIXTURE / SKILL) == _files(bank / SKILL), "re-copy ../shared/reference/tao-skill-bank/" + SKILL
    assert (FIXTURE / "LICENSE").read_bytes() == (bank / "LICENSE").read_bytes()
