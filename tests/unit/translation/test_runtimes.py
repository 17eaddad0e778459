"""`multiplt translate --stage all` executes every language of --lang, one after the other: a
language whose runtime is not installed is refused once the tests are read and before anything is
sampled (one line naming every such language, exit 2, nothing written), not after the other
languages' sampling; a bad tests dataset is still reported as such. The stages that do not
execute (sample) do not need the runtimes."""

from multiplt.execution import preflight
from tests.fixtures.translate import replay_translate as translate

ABSENT = {"jl": ["julia"], "lua": ["lua5.4"]}  # as on a machine without Julia and Lua


def test_a_missing_runtime_is_refused_before_anything_is_sampled(inputs, tmp_path, monkeypatch,
                                                                  no_work, capsys):
    checked = []

    def missing(lang, unsafe=False):
        checked.append((lang.code, unsafe))
        return ABSENT.get(lang.code, [])

    monkeypatch.setattr(preflight, "missing_binaries", missing)
    out = tmp_path / "out"
    assert translate(inputs, out, "rkt,jl,r,ml,lua") == 2
    err = capsys.readouterr().err
    assert ("--lang: the translations of julia (jl: julia not installed), lua (lua: lua5.4 not "
            "installed) cannot run (not on PATH /usr/local/bin:/usr/bin:/bin); install the runtime"
            ) in err
    assert err.count("error:") == 1 and err.count("\n") == 1
    assert not out.exists() and no_work == []
    assert checked == [(code, False) for code in ("rkt", "jl", "r", "ml", "lua")]


def test_without_a_sandbox_the_hosts_path_is_looked_in(inputs, tmp_path, monkeypatch, no_work,
                                                        capsys):
    bin_dir = tmp_path / "bin"  # a PATH that holds no runtime
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "out"
    assert translate(inputs, out, "rkt,jl", "--unsafe-no-sandbox") == 2
    err = capsys.readouterr().err
    assert (f"--lang: the translations of racket (rkt: racket not installed), julia (jl: julia not "
            f"installed) cannot run (not on PATH {bin_dir}); ") in err
    assert err.count("error:") == 1 and not out.exists() and no_work == []


def test_the_sample_stage_does_not_need_the_runtimes(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: ["absent"])
    out = tmp_path / "out"
    assert translate(inputs, out, "jl", "--stage", "sample") == 0
    assert list((out / "work" / "jl" / "0-of-1" / "completions").glob("*.json.gz"))


def test_a_bad_tests_dataset_is_reported_before_a_missing_runtime(inputs, tmp_path, monkeypatch,
                                                                   no_work, capsys):
    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: ["absent"])
    out = tmp_path / "out"
    assert translate({**inputs, "tests": str(tmp_path / "no_such_tests")}, out, "lua") == 2
    err = capsys.readouterr().err
    assert "cannot run" not in err and "no_such_tests" in err and no_work == []
