"""What of a workdir is synced: `.skyignore` if there is one, else `.gitignore` (as SkyPilot
does). Before, every file was copied, `.venv/` and checkpoints included."""

from __future__ import annotations

from pathlib import Path

from skyplan.runtime.sync import skip_for


def test_gitignore_patterns_leave_paths_out(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.log\ncheckpoints/\n!keep.log\n# a comment\n")
    skip = skip_for(tmp_path)
    assert skip is not None
    assert skip("train.log") and skip("sub/deep/x.log")
    assert skip("checkpoints/") and not skip("checkpoints")  # the pattern names a directory
    assert not skip("keep.log") and not skip("train.py") and not skip(".gitignore")


def test_a_skyignore_wins_over_the_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.py\n")
    (tmp_path / ".skyignore").write_text("data/\n")
    skip = skip_for(tmp_path)
    assert skip is not None
    assert skip("data/") and not skip("train.py")


def test_without_an_ignore_file_everything_is_synced(tmp_path: Path) -> None:
    assert skip_for(tmp_path) is None
    (tmp_path / "file.txt").write_text("x")
    assert skip_for(tmp_path / "file.txt") is None
