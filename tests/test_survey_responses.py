"""Reading responses: validation errors name the CSV line; exclusions are reported, never silent."""

import json

import pytest

from i2r.cli import main
from i2r.errors import UserError
from i2r.survey.responses import read_responses, wide_column
from i2r.survey.simulate import SimulationConfig, simulate_responses, to_csv

HEADER = "participant,example,scene,source,quality,match,screening_passed,attention_passed\n"


def _tidy(n=4, scenes=("a", "b"), examples=1, flags=("true", "true"), start=0):
    """A complete tidy file body: n participants x scenes x examples x 2 sources."""
    lines = []
    for p in range(start, start + n):
        for scene in scenes:
            for e in range(examples):
                for i, source in enumerate(("real", "generated")):
                    lines.append(f"p{p},{scene}{e},{scene},{source},{1 + (p + i) % 5},{1 + (p + 2 * i) % 5},{flags[0]},{flags[1]}\n")
    return lines


def _write(tmp_path, lines, header=HEADER):
    path = tmp_path / "responses.csv"
    path.write_text(header + "".join(lines))
    return path


def _error(path):
    with pytest.raises(UserError) as info:
        read_responses(path)
    return str(info.value)


def test_complete_file_reads_all(tmp_path):
    r = read_responses(_write(tmp_path, _tidy()))
    assert r.excluded == [] and len(r.data) == 4 * 2 * 2
    assert r.stimuli == [("a0", "generated"), ("a0", "real"), ("b0", "generated"), ("b0", "real")]
    assert r.flags_checked == ["screening_passed", "attention_passed"]


def test_missing_column_names_line_1(tmp_path):
    path = _write(tmp_path, ["p0,a,real,3\n"], header="participant,scene,source,quality\n")
    assert "line 1" in _error(path) and "match" in _error(path)


@pytest.mark.parametrize("value,words", [("6", "outside 1-5"), ("0", "outside 1-5"), ("3.5", "not an integer"),
                                         ("=1+2", "not an integer"), ("three", "not an integer")])
def test_bad_rating_names_line(tmp_path, value, words):
    lines = _tidy()
    lines[5] = lines[5].replace(",generated,", ",generated,").rsplit(",", 4)[0] + f",{value},3,true,true\n"
    message = _error(_write(tmp_path, lines))
    assert "line 7" in message and words in message and "quality" in message


def test_integer_valued_decimal_and_whitespace_accepted(tmp_path):
    lines = [line.replace(",real,", ",  real ,") for line in _tidy()]
    lines[0] = "p0,a0,a,real, 3.0 ,2,true,true\n"
    r = read_responses(_write(tmp_path, lines))
    assert r.data.query("participant == 'p0' and example == 'a0' and source == 'real'")["quality"].item() == 3


def test_duplicate_row_names_both_lines(tmp_path):
    lines = _tidy()
    lines.insert(3, lines[1])
    message = _error(_write(tmp_path, lines))
    assert "line 5" in message and "line 3" in message and "already" in message


def test_unknown_source_names_line(tmp_path):
    lines = _tidy()
    lines[2] = lines[2].replace(",real,", ",recorded,")
    message = _error(_write(tmp_path, lines))
    assert "line 4" in message and "recorded" in message


def test_fake_is_generated(tmp_path):
    lines = [line.replace(",generated,", ",fake,") for line in _tidy()]
    assert set(read_responses(_write(tmp_path, lines)).data["source"]) == {"real", "generated"}


def test_bad_flag_and_empty_participant(tmp_path):
    lines = _tidy()
    lines[1] = lines[1].replace(",true,true", ",maybe,true")
    assert "line 3" in _error(_write(tmp_path, lines))
    lines = _tidy()
    lines[0] = "," + lines[0].split(",", 1)[1]
    assert "line 2" in _error(_write(tmp_path, lines))


def test_example_in_two_scenes_is_an_error(tmp_path):
    lines = _tidy()
    lines[2] = lines[2].replace("b0,b,", "a0,b,")
    assert "scene" in _error(_write(tmp_path, lines))


def test_exclusions_are_listed_with_reasons(tmp_path):
    lines = _tidy(n=4)
    lines += _tidy(n=1, flags=("false", "true"), start=10)
    lines += _tidy(n=1, flags=("true", "false"), start=11)
    partial = _tidy(n=1, start=12)
    lines += partial[:-1]
    blank = _tidy(n=1, start=13)
    blank[0] = blank[0].replace(",true,true", "").rsplit(",", 2)[0] + ",,4,true,true\n"
    lines += blank
    r = read_responses(_write(tmp_path, lines))
    reasons = {e["participant"]: e["reason"] for e in r.excluded}
    assert reasons["p10"] == "failed the screening"
    assert reasons["p11"] == "failed the attention check"
    assert "missing 1" in reasons["p12"] and "b0/generated" in reasons["p12"]
    assert "a0/real quality" in reasons["p13"]
    assert sorted(r.data["participant"].unique()) == ["p0", "p1", "p2", "p3"]


def test_wide_layout_equals_tidy(tmp_path):
    rows = simulate_responses(SimulationConfig(n_participants=6, seed=9))
    tidy_path = tmp_path / "tidy.csv"
    tidy_path.write_text(to_csv(rows))
    columns = sorted({wide_column(r, row["scene"], row["example"], row["source"]) for row in rows for r in ("quality", "match")})
    table = {}
    for row in rows:
        entry = table.setdefault(row["participant"], {"participant": row["participant"],
                                                      "screening_passed": row["screening_passed"],
                                                      "attention_passed": row["attention_passed"]})
        for rating in ("quality", "match"):
            entry[wide_column(rating, row["scene"], row["example"], row["source"])] = str(row[rating])
    header = ["participant", "screening_passed", "attention_passed", *columns]
    wide_path = tmp_path / "wide.csv"
    wide_path.write_text(",".join(header) + "\n" + "".join(",".join(e.get(h, "") for h in header) + "\n" for e in table.values()))
    tidy, wide = read_responses(tidy_path), read_responses(wide_path)
    assert wide.layout == "wide" and tidy.excluded == wide.excluded
    key = ["participant", "example", "source"]
    assert tidy.data.sort_values(key).reset_index(drop=True).equals(wide.data.sort_values(key).reset_index(drop=True))


def test_wide_errors_name_line_and_column(tmp_path):
    col = wide_column("quality", "a", "a0", "real")
    path = tmp_path / "wide.csv"
    path.write_text(f"participant,{col},{wide_column('match', 'a', 'a0', 'real')}\np1,3,3\np2,9,3\n")
    message = _error(path)
    assert "line 3" in message and col in message
    path.write_text(f"participant,{col}\np1,3\n")
    assert "missing column match:a:a0:real" in _error(path)
    path.write_text("participant,quality:a:real\np1,3\n")
    assert "rating:scene:example:source" in _error(path)


def test_cli_error_line_and_exit_status(tmp_path, capsys):
    lines = _tidy()
    lines[0] = lines[0].replace(",real,", ",rea1,")
    assert main(["survey-stats", str(_write(tmp_path, lines))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "line 2" in err
    assert main(["survey-stats", str(tmp_path / "absent.csv")]) == 2


def test_cli_json_and_outputs(tmp_path, capsys):
    path = tmp_path / "sim.csv"
    path.write_text(to_csv(simulate_responses(SimulationConfig(n_participants=10, seed=1))))
    out = tmp_path / "out"
    assert main(["survey-stats", str(path), "--format", "json", "--out", str(out), "--tost", "unpaired"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_participants"] == 10 and doc["tost_kind"] == "unpaired" and doc["tost"][0]["dof"] == 18
    assert {p.name for p in out.iterdir()} == {"survey_stats.json", "table4.md", "table4.html", "fig9.png",
                                               "report.md", "report.html"}
    report = (out / "report.md").read_text()
    assert "unpaired" in report and "56" in report and "SIMULATED" in report
    assert (out / "fig9.png").read_bytes()[:4] == b"\x89PNG"


def test_html_report_escapes_participant_ids(tmp_path, capsys):
    lines = _tidy(n=3) + _tidy(n=1, flags=("false", "true"), start=7)
    lines = [line.replace("p7,", "<script>x</script>,") for line in lines]
    out = tmp_path / "out"
    assert main(["survey-stats", str(_write(tmp_path, lines)), "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "<script>x" not in html and "&lt;script&gt;x" in html
