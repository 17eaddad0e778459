"""translate keeps a translation only when its tests ran: each problem's tests are sealed with a
random nonce (`Language.seal_tests`) that the program prints after every test ran and passed,
and collect requires it on stdout. A translation that exits 0 before or instead of its tests (R
`quit`, Lua `os.exit`, Racket `exit`, OCaml `exit 0`) passed the old check (status OK, exit 0)
and does not pass this one; nor does a Racket translation that hides its failed checks (stderr
sent nowhere), which passed the old check too: a failed check now ends the program (exit 1),
see test_harness_redefinition.py. Also: the
problem report lists the dropped tests and counts tests in and translated; a replay source with
too few completions, and an output folder built before the seal, are refused before anything
is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from multiplt import cli, languages, storage
from multiplt.execution import files
from multiplt.languages import get, registry
from multiplt.languages.base import OK, Language
from multiplt.translation import dedup
from multiplt.translation.collect import NO_NONCE, collect_function, passed
from multiplt.translation.problems import build_problem
from tests.fixtures import translate as fx

ADD_ONE = fx.ROWS[0]
SET_SIZE = next(r for r in fx.ROWS if r["entrypoint"] == "set_size")

# per language: completions of add_one that exit 0 before or instead of running (or while
# hiding the failures of) its tests; each passed the old check, status OK and exit 0
CHEATS = {
    "lua": ["    return xs\nend\nos.exit(0)\n"],
    "r": ["\n  quit(save = 'no', status = 0)\n}\n", "\n  xs\n}\nquit(save = 'no', status = 0)\n"],
    "rkt": ["  (exit 0))\n"],
    "ml": ["\n  exit 0\n", "\n  xs\nlet () = exit 0\n"],
    "jl": ["    exit(0)\nend\n", "    return xs\nend\nexit(0)\n"],
}

#: Racket: a wrong add_one that hides rackunit's failure reports (which exit 0 and go to stderr)
HIDDEN_FAILURES = {"rkt": ["  (current-error-port (open-output-nowhere))\n  xs)\n"]}


def run_program(lang, program: str, tmp_path) -> dict:
    """A result record as the executor writes it, of `program` run by the language's command."""
    path = tmp_path / f"program.{lang.file_ext}"
    path.write_text(program)
    proc = subprocess.run(lang.command(str(path)), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **lang.env()})
    return {"program": program, "stdout": proc.stdout, "stderr": proc.stderr,
            "exit_code": proc.returncode, "status": lang.classify(proc.returncode, proc.stdout, proc.stderr)}


def test_every_target_has_cheats():
    assert set(CHEATS) == set(languages.targets())


@pytest.mark.slow
@pytest.mark.parametrize("code", languages.targets())
def test_a_translation_that_skips_its_tests_does_not_pass(code, tmp_path):
    lang = get(code)
    if not all(shutil.which(b) for b in lang.binaries):
        pytest.skip(f"{code} runtime not installed")
    problem = build_problem(ADD_ONE, lang).row
    nonce = problem["tests_nonce"]

    def result(completion):
        return run_program(lang, problem["prompt"] + completion + "\n" + problem["tests"], tmp_path)

    right = result(fx.COMPLETIONS[code]["add_one"][0])
    assert passed(right, nonce), right
    wrong = result(fx.COMPLETIONS[code]["add_one"][1])
    assert not passed(wrong, nonce)
    for cheat in CHEATS[code]:
        got = result(cheat)
        assert (got["status"], got["exit_code"]) == (OK, 0), (cheat, got)  # the old check: a pass
        assert not passed(got, nonce), (cheat, got)
    for hidden in HIDDEN_FAILURES.get(code, []):  # a failed test ends the program: exit 1
        got = result(hidden)
        assert got["exit_code"] == 1 and not passed(got, nonce), (hidden, got)


def test_the_nonce_is_the_problems_own_and_never_in_the_prompt():
    for code in languages.targets():
        one, two = build_problem(ADD_ONE, get(code)).row, build_problem(ADD_ONE, get(code)).row
        assert one["tests_nonce"] != two["tests_nonce"] and len(one["tests_nonce"]) == 32
        assert one["tests_nonce"] in one["tests"]
        assert one["tests_nonce"] not in one["prompt"] + one["clean_prompt"]
        assert one["tests"].startswith(get(code).test_marker.lstrip("\n"))
    nonce = one["tests_nonce"]
    ok = {"status": OK, "exit_code": 0}
    assert passed({**ok, "stdout": f"OK\n{nonce}\n"}, nonce)
    assert not passed({**ok, "stdout": f"OK\n{two['tests_nonce']}\n"}, nonce)  # another problem's
    assert not passed({**ok, "stdout": f"x{nonce}\n"}, nonce)  # not alone on its line
    assert not passed({"status": "AssertionError", "exit_code": 1, "stdout": f"{nonce}\n"}, nonce)
    with pytest.raises(ValueError, match="hex digits"):
        get("lua").seal_tests(get("lua").render_test_file("f", []), 'x")\nos.exit(0)--')


def test_collect_drops_a_run_without_the_nonce_and_keeps_the_test_counts(tmp_path):
    problem = {**build_problem(ADD_ONE, get("lua")).row, "id": ADD_ONE["id"]}
    nonce = problem["tests_nonce"]
    bodies = fx.COMPLETIONS["lua"]["add_one"][:1] + CHEATS["lua"]
    results = [{"program": problem["prompt"] + b + "\n" + problem["tests"], "status": OK, "exit_code": 0,
                "stdout": out} for b, out in zip(bodies, [f"OK\n{nonce}\n", ""])]
    kept, excluded, counts = collect_function(problem, {"completions": bodies, "results": results}, "lua",
                                              dedup.RougeDedup(1.0), {"model": "m", "revision": None}, 2)
    assert [(r["sample"], r["translated_tests"], r["source_tests"]) for r in kept] == [(0, 3, 3)]
    assert [(r["sample"], r["reason"]) for r in excluded] == [(1, NO_NONCE)]
    assert counts["passed"] == 1


def test_a_target_language_without_seal_tests_is_incomplete():
    class Unsealed(type(get("lua"))):
        seal_tests = Language.seal_tests

    class Source(Unsealed):
        target = False

    assert "seal_tests() (a translation target)" in registry._missing(Unsealed)
    assert registry._missing(Source) == [] and registry._missing(type(get("lua"))) == []


def sample(inputs, out, *extra):
    return cli.main(["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", "lua,rkt",
                     "--backend", "replay", "--replay-source", inputs["replay"], "--stage", "sample",
                     *extra])


def test_the_report_lists_dropped_tests_and_counts_the_tests(inputs, tmp_path):
    out = tmp_path / "out"
    assert sample(inputs, out, "--n", "7") == 0
    report = storage.read_json(str(out / "work" / "lua" / "0-of-1" / "problems.report.json"))
    assert report["tests_in"] == sum(len(r["tests"]) for r in fx.ROWS)
    assert report["tests_translated"] == sum(
        p["translated_tests"] for p in storage.read_jsonl(str(out / "work" / "lua" / "0-of-1" / "problems.jsonl")))
    assert report["tests_translated"] < report["tests_in"]
    dropped = report["dropped_tests"][SET_SIZE["sha1"]]  # the dropped function's tests too
    assert [d["test"] for d in dropped] == list(SET_SIZE["tests"])
    assert all(d["reason"].startswith("a value is not a supported literal") and " at 0x" not in d["reason"]
               for d in dropped)


def error_lines(capsys) -> list[str]:
    """The error lines of stderr (the rest is the log and progress bars)."""
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]


def test_a_replay_source_with_too_few_completions_writes_nothing(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert sample(inputs, out, "--n", str(fx.N + 1)) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and err[0].startswith(
        f"multiplt translate: error: replay source {inputs['replay'].replace('{lang}', 'lua')} "
        f"has fewer than {fx.N + 1} completions (--n) for 3 lua problem(s)")
    assert not out.exists()
    assert sample(inputs, out, "--n", str(fx.N), "--limit", "2") == 0  # another --limit then runs


def refused_by_every_stage(inputs, out, capsys, edit) -> list[str]:
    """A one-shard output whose problem report `edit` makes look older: every stage refuses it
    (exit 2, one line naming the report) and writes nothing; the stages' error lines."""
    assert sample(inputs, out, "--n", "1") == 0
    report_uri = out / "work" / "rkt" / "0-of-1" / "problems.report.json"
    report = json.loads(report_uri.read_text())
    edit(report)
    report_uri.write_text(json.dumps(report))
    capsys.readouterr()
    before = sorted(p for p in out.rglob("*"))
    errors = []
    for stage in ("all", "collect", "sample", "summary"):
        assert sample(inputs, out, "--n", "1", "--stage", stage) == 2
        err = error_lines(capsys)
        assert len(err) == 1 and f"{report_uri} was built by an older multiplt" in err[0]
        errors.append(err[0])
    assert sorted(p for p in out.rglob("*")) == before
    return errors


def test_a_folder_built_before_the_seal_is_refused(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    # as a multiplt older than the seal wrote it
    refused_by_every_stage(inputs, out, capsys, lambda report: report.pop("tests_nonce"))
    assert not storage.exists(files.results_uri(str(out / "work" / "lua" / "0-of-1" / "completions"),
                                                ADD_ONE["sha1"]))


def test_a_folder_built_with_an_older_seal_is_refused(inputs, tmp_path, capsys):
    # a shard sealed before the static check of tampers_with_tests (its report has tests_nonce
    # but no seal version) resumes under nothing weaker: refused by every stage, nothing written
    def older_seal(report):
        assert report["tests_nonce"] is True and report["seal"] == 2
        del report["seal"]

    errors = refused_by_every_stage(inputs, tmp_path / "out", capsys, older_seal)
    assert all("(seal 1, this multiplt's is 2); use a fresh --out" in err for err in errors)
