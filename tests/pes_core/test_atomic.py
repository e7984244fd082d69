"""The one atomic-write helper of the store layer (store file, blob files, spool)."""

import pytest

from pes_core.atomic import temporary_name, write_atomically


def test_bytes_and_text_replace_the_target_and_leave_no_temporary_file(tmp_path):
    target = tmp_path / "a.bin"
    write_atomically(target, b"\x00\x01old")
    write_atomically(target, "nöu")  # str is written as UTF-8
    assert target.read_bytes() == "nöu".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_failure_before_the_rename_keeps_the_old_content(tmp_path):
    target = tmp_path / "store.json"
    target.write_text("good")
    seen = []

    def fail():
        seen.append(temporary_name(target).read_text())  # the new data is on disk before the hook runs
        raise OSError("backup rotation failed")

    with pytest.raises(OSError, match="backup rotation failed"):
        write_atomically(target, "new", before_replace=fail)
    assert seen == ["new"]
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["store.json"]


def test_temporary_files_are_hidden_and_per_process(tmp_path):
    tmp = temporary_name(tmp_path / "x.json")
    assert tmp.parent == tmp_path and tmp.name.startswith(".x.json.") and tmp.name.endswith(".tmp")
