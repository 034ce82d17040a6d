"""What of a workdir is synced: `.skyignore` if there is one, else every `.gitignore` in the
tree, each over its own folder (as SkyPilot does). Before, every file was copied, `.venv/` and
checkpoints included; then only the top `.gitignore` was read."""

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


def test_a_nested_gitignore_rules_its_own_folder_and_overrides_its_parent(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / ".gitignore").write_text("dist/\n!access.log\n")
    skip = skip_for(tmp_path)
    assert skip is not None
    assert skip("web/dist/") and not skip("dist/")  # only under its own folder
    assert skip("web/error.log") and skip("train.log")  # the parent's rule still holds
    assert not skip("web/access.log") and skip("access.log")  # the deeper file decides


def test_gitignores_inside_an_ignored_folder_are_not_read(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text(".venv/\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / ".gitignore").write_text("!*\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / ".gitignore").write_text("*.pyc\n")
    skip = skip_for(tmp_path)
    assert skip is not None
    assert skip(".venv/") and skip("src/a.pyc") and not skip("src/a.py")


def test_only_a_nested_gitignore_is_enough(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".gitignore").write_text("*.bin\n")
    skip = skip_for(tmp_path)
    assert skip is not None
    assert skip("data/w.bin") and not skip("w.bin")
