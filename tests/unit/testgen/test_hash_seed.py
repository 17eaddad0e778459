"""Reproducible verdicts: Python programs run under a fixed PYTHONHASHSEED, testgen's asserts run
first under a second seed and an assert whose verdict differs is `Flaky` (dropped, counted), and
`random` is seeded per assert; two runs of testgen over the same inputs give the same outputs."""

from __future__ import annotations

import hashlib
import itertools
import json
import random

import polars as pl

from multiplt import cli, languages
from multiplt.execution.retry import run_with_retries
from multiplt.languages.python import HASH_SEED
from multiplt.testgen.runner_measure import _seed
from multiplt.testgen.validate import FLAKY, SCREEN_HASH_SEED, Check, coverage_path, run_checks
from tests.unit.testgen import test_runner

sandbox = test_runner.sandbox  # the fixture: one warm sandbox for this module

LETTERS = ('def unique_letters(text):\n    """The distinct letters of text."""\n'
           '    seen = set(text)\n    result = list(seen)\n    return result\n')
PERMUTATIONS = [list(p) for p in itertools.permutations("abc")]
PICK = 'import random\n\n\ndef pick(xs):\n    """One of xs."""\n    return random.choice(xs)\n'


def _order(sandbox, seed: int, text: str = "abc") -> list[str]:
    """list(set(text)) in the sandbox's python3 under PYTHONHASHSEED `seed`."""
    py = languages.get("py").with_hash_seed(seed)
    return list(run_with_retries(sandbox, py, f"print(''.join(set({text!r})))", 10.0).stdout.strip())


def test_python_programs_run_under_the_fixed_hash_seed(sandbox):
    py = languages.get("py")
    assert py.env() == {"PYTHONHASHSEED": str(HASH_SEED)} and HASH_SEED == 0
    program = ("import os, sys\nprint(os.environ.get('PYTHONHASHSEED'), sys.flags.hash_randomization,"
               " sys.flags.no_user_site, ''.join(set('abcdefgh')))\n")
    runs = {run_with_retries(sandbox, py, program, 10.0).stdout for _ in range(3)}
    want = "".join(_order(sandbox, HASH_SEED, "abcdefgh"))
    assert runs == {f"0 0 1 {want}\n"}  # the seed is honoured: no hash randomization
    other = run_with_retries(sandbox, py.with_hash_seed(SCREEN_HASH_SEED), program, 10.0).stdout
    assert other.split()[:2] == [str(SCREEN_HASH_SEED), "1"]


def _asserts() -> list[str]:
    return [f"assert unique_letters('abc') == {p!r}" for p in PERMUTATIONS]


def test_an_assert_whose_verdict_depends_on_the_hash_seed_is_flaky(sandbox):
    screen, main = _order(sandbox, SCREEN_HASH_SEED), _order(sandbox, HASH_SEED)
    assert screen != main  # the seeds order these letters differently: the test needs it
    stable = "assert sorted(unique_letters('abc')) == ['a', 'b', 'c']"
    check = Check("k" * 40, LETTERS, "unique_letters", [*_asserts(), stable])
    run_checks(sandbox, [check], timeout=2.0, cov_path=coverage_path())
    want = ["Flaky" if p == screen else "AssertionError" for p in PERMUTATIONS] + ["OK"]
    assert check.statuses == want and FLAKY == "Flaky"
    assert check.passing == [stable]  # the coverage run has only the stable assert
    assert check.coverage["missing"] == [] and check.coverage["errors"] == 0


def test_random_is_seeded_from_the_function_and_the_assert(sandbox):
    """Every assert draws its own numbers, the same on every run and under both hash seeds (so
    a random function's assert is never Flaky): seeded from the function's key and the text."""
    key = "u" * 40  # a key under which 2 of the 10 asserts pass
    texts = [f"assert pick(list(range(10))) == {i}" for i in range(10)]
    want = []
    for text in texts:
        rng = random.Random(_seed(key, [text]))
        want.append("OK" if rng.choice(list(range(10))) == int(text.rsplit(" ", 1)[1])
                    else "AssertionError")
    assert "OK" in want and "AssertionError" in want
    for _ in range(2):
        check = Check(key, PICK, "pick", list(texts))
        run_checks(sandbox, [check], timeout=2.0, cov_path=coverage_path())
        assert check.statuses == want


def _functions(tmp_path) -> str:
    rows = []
    for content, entry in ((LETTERS, "unique_letters"),
                           ('def double(x):\n    """Twice x."""\n    return 2 * x\n', "double")):
        rows.append({"content": content, "id": f"fixture/{entry}.py:1", "entrypoint": entry,
                     "sha1": hashlib.sha1(content.encode()).hexdigest(), "context": "",
                     "origin": "fixture"})
    (tmp_path / "fn" / "functions").mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(tmp_path / "fn" / "functions" / "part-0.parquet")
    replay = tmp_path / "replay.jsonl"
    lines = [{"name": rows[0]["sha1"], "completion": f"'abc') == {p!r}\n",
              "entrypoint": "unique_letters"} for p in PERMUTATIONS]
    lines += [{"name": rows[1]["sha1"], "completion": f"{i}) == {2 * i}\n", "entrypoint": "double"}
              for i in range(6)]
    replay.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(tmp_path / "fn"), str(replay)


def _outputs(out) -> tuple:
    frames = tuple(pl.read_parquet(out / part / "shard-all.parquet").to_dicts()
                   for part in ("tests", "excluded"))
    return (*frames, json.loads((out / "funnel.json").read_text()),
            json.loads((out / "work" / "shard-all" / "config.json").read_text())["python_hash_seeds"])


def test_testgen_drops_the_flaky_assert_and_two_runs_give_the_same_outputs(tmp_path, capsys):
    functions, replay = _functions(tmp_path)
    outs = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        assert cli.main(["testgen", "--functions", functions, "--out", str(out), "--backend",
                         "replay", "--replay-source", replay, "--n", "6"]) == 0
        outs.append(_outputs(out))
    capsys.readouterr()
    tests, excluded, funnel, seeds = outs[0]
    assert outs[1] == outs[0]
    assert seeds == [SCREEN_HASH_SEED, HASH_SEED]
    assert [r["entrypoint"] for r in tests] == ["double"] and len(tests[0]["tests"]) == 6
    (row,) = excluded
    assert (row["entrypoint"], row["reason"], row["tests"]) == ("unique_letters", "flaky", [])
    assert row["detail"].startswith(f"6 assert(s), none passed under both hash seeds: 1 passed "
                                    f"under PYTHONHASHSEED={SCREEN_HASH_SEED} only")
    steps = {s["name"]: (s["in"], s["out"]) for s in funnel["steps"]}
    assert steps["no_passing_test"] == (2, 2) and steps["flaky"] == (2, 1)
    assert funnel["verdicts"] == {"OK": 6, "Flaky": 1, "AssertionError": 5}


def test_a_timeout_or_a_killed_runner_in_the_main_run_stays_so_not_flaky():
    """Flaky is for a result that differs between the seeds (an assertion error or exception
    after the screening's pass); a timeout (a loaded machine) or a runner killed in the main run
    is the machine's, and keeps its own status (counted in the verdicts as such)."""
    from multiplt.testgen.validate import KILLED_RUNNER, _verdict

    assert [_verdict(s, screening=False) for s in ("OK", "Timeout", KILLED_RUNNER, "AssertionError",
                                                    "KeyError")] == [
        "OK", "Timeout", KILLED_RUNNER, FLAKY, FLAKY]
