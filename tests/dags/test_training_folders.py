"""multiplt_finetune's training output folders: a run with a `base_revision` trains into a folder
named with it (`<base>@<revision>-<experiment>-<lang>`), so the same base at another revision (a
manual run, or multiplt_watch's fine-tune of a moved or re-created repo) no longer lands in the
first one's folder, where `multiplt train` refuses to resume (base_revision differs); runs
without one keep the folder they always had. The consumers of the output (the checkpoints'
evaluation confs and run folders, the checkpoints Asset's publication, the leaderboard's
pairing with the base) take the new name as they take the old."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt_pipelines.plans import checkpoint_confs, evaluation_plan, training_plan  # noqa: E402
from tests.support.airflow import load_dag  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
#: what a run folder part may hold (safe_part), and `-` between the parts
NAME = re.compile(r"^[A-Za-z0-9._+=@,-]+$")


def defaults(schema: dict, **given) -> dict:
    return {**{k: v["default"] for k, v in schema.items() if "default" in v}, **given}


def outs(**given) -> list[str]:
    params = defaults(schemas.FINETUNE, base_model="bigcode/starcoderbase-1b", languages=["lua"], **given)
    return [entry["out"] for entry in training_plan(params, "s3://b/runs")]


def test_a_base_revision_gets_a_folder_of_its_own():
    plain = "s3://b/runs/training/bigcode_starcoderbase_1b-multiplt-lua"
    assert outs() == [plain]  # as it always was: existing outputs resume
    assert outs(base_revision=None) == outs(base_revision="") == [plain]
    assert outs(base_revision=COMMIT) == ["s3://b/runs/training/bigcode_starcoderbase_1b@0123456789ab-multiplt-lua"]
    assert outs(base_revision=OTHER) == ["s3://b/runs/training/bigcode_starcoderbase_1b@fedcba987654-multiplt-lua"]
    assert outs(base_revision="v1.0") == ["s3://b/runs/training/bigcode_starcoderbase_1b@v1.0-multiplt-lua"]
    moved = outs(base_revision=COMMIT, training_root="file:///d/t/")
    assert moved == ["file:///d/t/bigcode_starcoderbase_1b@0123456789ab-multiplt-lua"]


def test_the_train_command_gets_the_full_revision():
    params = defaults(schemas.FINETUNE, base_model="org/m", languages=["lua", "rkt"], base_revision=COMMIT)
    for entry in training_plan(params, "s3://b/runs"):
        argv = entry["train"]
        assert argv[argv.index("--base-revision") + 1] == COMMIT
        assert argv[argv.index("--out") + 1] == entry["out"]
        assert entry["out"].endswith(f"/org_m@0123456789ab-multiplt-{entry['lang']}")


@pytest.mark.parametrize("revisions", [
    (COMMIT, OTHER), ("main", "dev"), ("refs/pr/1", "refs_pr_1"), ("refs/pr/1", "refs/pr/2"),
    ("release-2024-01", "release-2024-02"), ("a" * 30, "a" * 31), ("0123456789ab", COMMIT),
    (COMMIT, COMMIT[:12] + "_" + "0" * 8)])
def test_two_revisions_never_share_a_folder_and_every_name_is_safe(revisions):
    names = [outs(base_revision=revision)[0].rsplit("/", 1)[-1] for revision in revisions]
    assert names[0] != names[1]
    for name in names:
        assert NAME.match(name), name
        # the parts are still base, experiment, lang: `-` separates them only
        base, experiment, lang = name.split("-")
        assert (experiment, lang) == ("multiplt", "lua") and base.startswith("bigcode_starcoderbase_1b@")
        assert len(base.split("@", 1)[1]) <= 21  # a long revision is cut (and hashed)


def _manifest_row(out, lang, epoch, base="base/model"):
    return {"uri": f"{out}/checkpoints/epoch{epoch}", "epoch": epoch, "step": 10 * epoch,
            "tag": f"{lang}-multiplt-epoch{epoch}", "eval_loss": 1.0 / epoch, "lang": lang,
            "experiment": "multiplt", "base": base, "tokenizer": base}


def test_the_checkpoints_of_a_revisions_folder_are_evaluated_and_published(tmp_path):
    """checkpoint_confs (the finetune DAG's `checkpoints` task), the evaluate DAG's run folders
    and the publish DAG's checkpoint commands take the folder as they take the plain one."""
    from multiplt.storage import manifest
    from multiplt_pipelines import publishing as pub

    params = defaults(schemas.FINETUNE, base_model="base/model", base_revision=COMMIT, languages=["lua"],
                      n=4, backend="replay", replay_source="file:///r/{lang}")
    [entry] = training_plan(params, f"file://{tmp_path}")
    assert entry["out"] == f"file://{tmp_path}/training/base_model@0123456789ab-multiplt-lua"
    manifest.append(entry["out"], _manifest_row(entry["out"], "lua", 1))
    triggers = load_dag("multiplt_finetune").get_task("checkpoints").python_callable(
        [entry], params, run_id="manual__1")
    base, checkpoint = (t["conf"] for t in triggers)
    assert (base["model"], base["revision"], base["epoch"]) == ("base/model", COMMIT, 0)
    assert (checkpoint["model"], checkpoint["revision"]) == (entry["out"], "lua-multiplt-epoch1")
    assert checkpoint["checkpoint_uri"] == f"{entry['out']}/checkpoints/epoch1"
    [run] = evaluation_plan(defaults(schemas.EVALUATE, **checkpoint), "s3://b/runs", "s3://b/r.parquet")
    folder = run["run"].rsplit("/", 1)[-1]
    assert "base_model@0123456789ab_multiplt_lua-lua_multiplt_epoch1" in folder and NAME.match(folder)
    assert checkpoint_confs(params, [{"lang": "lua", "out": entry["out"],
                                      "rows": manifest.read(entry["out"])}])[1] == checkpoint
    extra = {"outputs": [{"lang": "lua", "out": entry["out"]}], "base_model": "base/model",
             "experiment": "multiplt"}
    [command] = pub.checkpoint_commands(
        defaults(pub.PUBLISH, checkpoints_repo="org/MultiPL-T-{base}"),
        [{"name": "multiplt_checkpoints", "uri": "x://c", "extra": extra}], None)
    assert command[2:6] == ["--from", entry["out"], "--repo", "org/MultiPL-T-base__model"]


def test_the_leaderboard_pairs_a_revisions_checkpoints_with_their_base():
    """The rows of a checkpoint name its base (`base_model`, from the training manifest): the
    leaderboard starts its line at the base's epoch 0 whatever the folder is called."""
    from multiplt_leaderboard.board import epoch_series

    out = "s3://b/runs/training/org_m@0123456789ab-multiplt-lua"
    rows = [{"lang": "lua", "experiment": "multiplt", "model": "org/m", "epoch": 0, "k": 1,
             "estimate": 0.1, "benchmark": "humaneval"},
            {"lang": "lua", "experiment": "multiplt", "model": "org/other", "epoch": 0, "k": 1,
             "estimate": 0.3, "benchmark": "humaneval"},
            {"lang": "lua", "experiment": "multiplt", "model": out, "epoch": 1, "k": 1,
             "estimate": 0.2, "benchmark": "humaneval", "base_model": "org/m"}]
    series = epoch_series(rows)
    assert series[f"lua (multiplt) · {out}"] == [(0, 0.1), (1, 0.2)]


def test_a_run_begun_in_the_plain_folder_at_this_revision_is_resumed_there(tmp_path):
    """A fine-tune with a base_revision begun before revisions got folders of their own trained in
    `<base>-<experiment>-<lang>`: the plan finds its run config there (as `multiplt train` writes
    it) and resumes it in that folder when it records the same base_revision; another revision,
    or no run there, gets the `@<revision>` folder."""
    from multiplt.training import checkpoint
    from multiplt.training.config import TrainConfig
    from multiplt_pipelines.plans import started_revision

    root = tmp_path / "training"
    params = defaults(schemas.FINETUNE, base_model="bigcode/starcoderbase-1b", languages=["lua", "rkt"],
                      base_revision=COMMIT, training_root=str(root))
    plain = root / "bigcode_starcoderbase_1b-multiplt-lua"
    plain.mkdir(parents=True)
    checkpoint.write_yaml(str(plain / checkpoint.RUN_CONFIG),
                          {"config": TrainConfig(base=params["base_model"], base_revision=COMMIT).as_dict()})
    got = [e["out"] for e in training_plan(params, "s3://b/runs", started=started_revision)]
    assert got == [str(plain), str(root / "bigcode_starcoderbase_1b@0123456789ab-multiplt-rkt")]
    other = {**params, "base_revision": OTHER}
    assert [e["out"] for e in training_plan(other, "s3://b/runs", started=started_revision)][0] == str(
        root / "bigcode_starcoderbase_1b@fedcba987654-multiplt-lua")
    assert started_revision(str(root / "nothing-here")) is None


def test_a_storage_error_reading_the_plain_folder_fails_the_plan_not_retrains(tmp_path, monkeypatch):
    """S3 unreachable while plan reads the plain folder's run config: the plan fails (its task
    retries) instead of choosing the @<revision> folder and training again from epoch 1."""
    from multiplt import storage
    from multiplt.errors import PlatformError
    from multiplt_pipelines.plans import started_revision

    def unreachable(uri):
        raise PlatformError(f"cannot reach the object store for {uri}")

    monkeypatch.setattr(storage, "exists", unreachable)
    params = defaults(schemas.FINETUNE, base_model="bigcode/starcoderbase-1b", languages=["lua"],
                      base_revision=COMMIT, training_root=str(tmp_path / "training"))
    with pytest.raises(PlatformError, match="cannot reach"):
        training_plan(params, "s3://b/runs", started=started_revision)
    (tmp_path / "bad").mkdir()
    monkeypatch.undo()
    (tmp_path / "bad" / "_multiplt_train.yaml").write_text("config: [unclosed\n")
    assert started_revision(str(tmp_path / "bad")) is None  # no YAML: no run to resume there
