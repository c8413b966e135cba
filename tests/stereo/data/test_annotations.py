import pytest

from stereo.data.annotations import check_files_exist, read_annotation_file
from stereo.errors import DataError


def test_blank_and_comment_lines_skipped_relative_paths_resolved(tmp_path):
    ann = tmp_path / "sub" / "a.txt"
    ann.parent.mkdir()
    ann.write_text("# header\n\nl.png r.png d.pfm\n   \n/abs/l.png /abs/r.png /abs/d.pfm\n")
    lines = read_annotation_file(ann, (3,))
    assert [ln.lineno for ln in lines] == [3, 5]
    assert lines[0].paths[0] == ann.parent.resolve() / "l.png"
    assert str(lines[1].paths[2]) == "/abs/d.pfm"
    assert lines[0].where == f"{ann}:3"


def test_wrong_column_count_names_file_line_and_dataset(tmp_path):
    ann = tmp_path / "a.txt"
    ann.write_text("l r d\nl r\n")
    with pytest.raises(DataError, match=r"a\.txt:2: 2 columns for dataset_name Kitti, expected 3"):
        read_annotation_file(ann, (3,), "Kitti")


def test_missing_annotation_file_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="nope.txt does not exist"):
        read_annotation_file(tmp_path / "nope.txt", (3,))
    (tmp_path / "e.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match="e.txt has no samples"):
        read_annotation_file(tmp_path / "e.txt", (3,))


def test_missing_file_names_file_line_and_column(tmp_path):
    (tmp_path / "l.png").write_bytes(b"")
    ann = tmp_path / "a.txt"
    ann.write_text("\nl.png r.png\n")
    line = read_annotation_file(ann, (2,))[0]
    with pytest.raises(DataError, match=r"a\.txt:2: right image .*r\.png does not exist"):
        check_files_exist(line)
