"""Two `multiplt benchmark build`s of other --limit into one file on object storage at once: the
report records the sha256 of the file's text, so the build whose file or report the other
replaced is told (exit 3, retried), and a reader refuses the report beside problems it does not
describe (build.built_report), never labelling 3 problems `first5`.

The interleaving is made deterministic by running the second build from inside the first one's
write of its report, where a real second process could write."""

import pytest

from multiplt import storage
from multiplt.benchmarks import build
from multiplt.errors import MultipltError, PlatformError


def other_after_report(monkeypatch, other):
    """The first write of a report (`*.report.json`) is followed by `other()`, run to its end."""
    real = storage.write_json
    state = {"raced": False}

    def write_json(uri, *args, **kwargs):
        real(uri, *args, **kwargs)
        if str(uri).endswith(".report.json") and not state["raced"]:
            state["raced"] = True
            other()

    monkeypatch.setattr(storage, "write_json", write_json)
    return state


def test_a_build_whose_report_another_replaced_is_told_and_readers_refuse_the_pair(
        s3_bucket, monkeypatch):
    """--limit 5 wrote its report; --limit 3 then built the file whole (its report, its 3
    problems); --limit 5 wrote its 5 problems last. The report there says limit 3 beside 5
    problems: the --limit 5 build fails (exit 3) and the pair is refused to readers."""
    out = f"{s3_bucket}/bench/humaneval-lua.jsonl"
    state = other_after_report(monkeypatch,
                               lambda: build.build_benchmark("humaneval", "lua", out, limit=3))
    with pytest.raises(PlatformError, match=r"^another `multiplt benchmark build` wrote \S+"
                                            r"\.report\.json while this one wrote "):
        build.build_benchmark("humaneval", "lua", out, limit=5)
    assert state["raced"]
    assert len(storage.read_jsonl(out)) == 5
    assert storage.read_json(out + ".report.json")["config"]["limit"] == 3
    with pytest.raises(MultipltError, match=r"\.report\.json does not describe \S+ beside it "
                                            r"\(its jsonl_sha256 is "):
        build.built_report(out)
    # the build again (one at a time; the race is over) leaves a pair that describes itself
    report = build.build_benchmark("humaneval", "lua", out, limit=5)
    assert build.built_report(out) == report and report["config"]["limit"] == 5


def test_a_build_that_wrote_only_its_report_is_told_when_the_file_is_anothers(s3_bucket, monkeypatch):
    """The file already holds --limit 3's problems; a rebuild of the same (only its report
    differs: another version) writes its report, then a --limit 2 build writes its own report
    and file; then the first one's report is not there any more: it is told."""
    import multiplt

    out = f"{s3_bucket}/bench/humaneval-lua.jsonl"
    build.build_benchmark("humaneval", "lua", out, limit=3)
    monkeypatch.setattr(multiplt, "__version__", "0.0.0+other")
    other_after_report(monkeypatch, lambda: build.build_benchmark("humaneval", "lua", out, limit=2))
    with pytest.raises(PlatformError, match="another `multiplt benchmark build` wrote"):
        build.build_benchmark("humaneval", "lua", out, limit=3)
    assert len(storage.read_jsonl(out)) == 2
    assert build.built_report(out)["config"]["limit"] == 2  # the other's pair agrees


def test_the_readers_of_a_report_refuse_one_that_describes_another_file(tmp_path):
    """generate's selection label (run_folder.built_marker) and evaluate's check of a built file
    read the report through build.built_report: a report beside problems it does not describe is
    one error, never a `first5` label on 3 problems."""
    from multiplt.commands.evaluate import _check_built
    from multiplt.evaluation.run_folder import built_marker

    out = str(tmp_path / "humaneval-lua.jsonl")
    build.build_benchmark("humaneval", "lua", out, limit=5)
    assert built_marker(out) == "_first5"
    rows = storage.read_jsonl(out)
    storage.write_jsonl(out, rows[:3])  # another build's file beside this report
    for read in (lambda: built_marker(out), lambda: _check_built(out, "humaneval", "lua")):
        with pytest.raises(build.ReportMismatch, match="does not describe"):
            read()
