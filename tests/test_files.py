"""Atomic writes: all or nothing, and ordinary permissions."""

import os

import pytest

from i2r.files import atomic_open, atomic_savefig, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("half of the new")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_a_figure_that_fails_to_render_leaves_the_old_file(tmp_path):
    from matplotlib.figure import Figure

    target = tmp_path / "plot.pdf"
    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    atomic_savefig(figure, target, format="pdf")
    old = target.read_bytes()
    assert old.startswith(b"%PDF")
    # bad mathtext: the PDF backend has begun writing its file when the title fails to render
    figure.subplots().set_title(r"$x^$")
    with pytest.raises(ValueError):
        atomic_savefig(figure, target, format="pdf")
    assert target.read_bytes() == old
    assert os.listdir(tmp_path) == ["plot.pdf"]


def test_written_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_output_locations_are_checked_before_work_and_not_created(tmp_path):
    from i2r.errors import UserError
    from i2r.files import writable_dir, writable_file

    assert writable_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert writable_file(tmp_path / "made" / "r.csv") == tmp_path / "made" / "r.csv"
    blocker = tmp_path / "a file"
    blocker.write_text("mine")
    with pytest.raises(UserError, match="a file: is a file, expected a folder"):
        writable_dir(blocker)
    with pytest.raises(UserError, match="is a folder, expected a file"):
        writable_file(tmp_path)
    with pytest.raises(UserError, match="a file/sub: .*a file is a file, expected a folder"):
        writable_dir(blocker / "sub")
    with pytest.raises(UserError, match="^/proc/i2r/x.csv: cannot write into /proc "):
        writable_file("/proc/i2r/x.csv")
    # nothing was made: a run refused later for another reason leaves no empty folders
    assert blocker.read_text() == "mine" and os.listdir(tmp_path) == ["a file"]


def test_a_refused_write_names_the_destination_not_the_temporary_file(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("mine")
    with pytest.raises(OSError) as caught:
        atomic_write_text(blocker / "result.json", "x")
    assert caught.value.filename == str(blocker / "result.json")


def test_the_cli_turns_a_file_system_refusal_into_one_error_line(tmp_path, capsys, monkeypatch):
    import i2r.cli

    def refuse(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.csv"))

    monkeypatch.setattr(i2r.cli, "_run_synth", refuse)
    assert i2r.cli.main(["synth", "--n", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'x.csv'}: Permission denied\n"
    assert i2r.cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: give a command, one of demo, analyze") and err.count("\n") == 1


def test_a_journal_is_read_only_under_its_identity_and_without_its_cut_off_line(tmp_path):
    from i2r.files import read_journal

    journal = tmp_path / "j.jsonl"
    journal.write_text('{"seed": 1}\n{"index": 0}\n{"index": 1}\n{"ind')  # killed mid-line
    assert read_journal(journal, {"seed": 1}) == [{"index": 0}, {"index": 1}]
    assert read_journal(journal, {"seed": 2}) == []
    journal.write_text('{"se')
    assert read_journal(journal, {"seed": 1}) == []


def test_a_written_journal_reads_back_record_by_record(tmp_path):
    from i2r.files import journal_writer, read_journal

    with journal_writer(tmp_path / "j.jsonl", {"seed": 1}) as append:
        append({"index": 0}, {"index": 1})
        append()
        append({"index": 2, "t": float("nan")})
        # each append is on disk when it returns, before the journal is closed
        assert [r["index"] for r in read_journal(tmp_path / "j.jsonl", {"seed": 1})] == [0, 1, 2]
