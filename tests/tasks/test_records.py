"""Files of the run store: written atomically, with the mode a plain `open()` would give them."""

import os
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel

from tasks.records import as_opened, current_umask, write_atomic, write_json, write_rows


class Row(BaseModel):
    n: int


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_run_files_get_the_mode_open_gives_under_the_umask(tmp_path, umask, expected):
    """mkstemp creates its file 0600: a store then held private JSON beside public PNGs and
    adapters. Every writer of the store goes through write_atomic."""
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_atomic(tmp_path / "a.bin", b"x")
        write_json(tmp_path / "b.json", {"a": 1})
        write_rows(tmp_path / "c.jsonl", [Row(n=1)])
        (tmp_path / "plain.txt").write_text("x")  # what open() gives
    finally:
        os.umask(old)
    assert mode(tmp_path / "plain.txt") == expected
    for name in ("a.bin", "b.json", "c.jsonl"):
        assert mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json", "c.jsonl",
                                                          "plain.txt"]  # no temporaries left


def test_the_umask_is_read_without_changing_it():
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still what it was
    finally:
        os.umask(old)


def test_a_directory_a_library_wrote_gets_the_same_modes(tmp_path):
    """safetensors writes 0600: an adapter's weights were private beside its 0644 config."""
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o022)
    try:
        (tmp_path / "sub").mkdir()
        save_file({"w": torch.zeros(2)}, str(tmp_path / "sub" / "w.safetensors"))
        (tmp_path / "config.json").write_text("{}")
        as_opened(tmp_path)
    finally:
        os.umask(old)
    assert mode(tmp_path / "sub" / "w.safetensors") == 0o644
    assert mode(tmp_path / "config.json") == 0o644
