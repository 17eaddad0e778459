"""A dataset repo holds one source folder's dataset (multiplt/hub/dataset.py `check_source`):
publishing the same folder again updates it; another folder (another translate output) is
refused before anything is sent, naming both sources, unless --force. Against the test Hub."""

from __future__ import annotations

import json
import re

import pytest

from multiplt import cli, storage
from multiplt.hub import cards
from multiplt.hub.dataset import source_name

WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def write_dataset(root, text: str) -> str:
    """A translate-like output: one Lua split whose rows say `text`, a funnel and a config."""
    import polars as pl

    storage.write_parquet(f"{root}/data/lua-00000-of-00001.parquet",
                          pl.DataFrame({"content": [f"-- {text}\nlocal x = 1\n"] * 2}))
    storage.write_json(f"{root}/funnel.json", {"lua": {"in": 4, "kept": 2}})
    storage.write_json(f"{root}/config/lua-0-of-1.json", {"language": "lua", "model": "org/translator",
                                                          "out": str(root)})
    return str(root)


def writes(hub) -> int:
    return len([r for r in hub.requests if r[0] in WRITES and "validate-yaml" not in r[1]])


def main_files(hub, repo: str, branch: str = "main") -> dict:
    return hub.repos[("dataset", repo)].resolve(branch).files


def publish(capsys, *argv) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    code = cli.main(["publish", "dataset", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_another_folder_is_refused_the_same_folder_updates(test_hub, tmp_path, capsys):
    a, b = write_dataset(tmp_path / "tr-a", "from a"), write_dataset(tmp_path / "tr-b", "from b")
    code, first, _ = publish(capsys, "--from", a, "--repo", "ns/ds")
    assert code == 0 and first["uploaded"] == 2
    card = main_files(test_hub, "ns/ds")["README.md"][0].decode()
    assert cards.dataset_source(card) == source_name(a)

    # the same folder, spelled otherwise: an update (here: nothing changed, nothing sent)
    before = writes(test_hub)
    code, again, _ = publish(capsys, "--from", f"file://{a}/", "--repo", "ns/ds")
    assert code == 0 and again["up_to_date"] and writes(test_hub) == before

    # another folder: refused before anything is sent, one line naming both sources
    code, _, err = publish(capsys, "--from", b, "--repo", "ns/ds")
    assert code == 2 and err.count("error:") == 1
    assert (f"--repo ns/ds holds the dataset published from `{source_name(a)}`, not --from {b} "
            f"(`{source_name(b)}`)") in err
    assert "another --repo" in err and "--force" in err
    assert writes(test_hub) == before
    files = main_files(test_hub, "ns/ds")
    assert b"from a" in files["data/lua-00000-of-00001.parquet"][0]
    assert not storage.exists(f"{b}/published.json")

    # --force replaces it, and says so; the card then names the new source
    code, forced, _ = publish(capsys, "--from", b, "--repo", "ns/ds", "--force")
    assert code == 0 and forced["replaced"] == source_name(a) and forced["uploaded"] == 2
    files = main_files(test_hub, "ns/ds")
    assert b"from b" in files["data/lua-00000-of-00001.parquet"][0]
    assert cards.dataset_source(files["README.md"][0].decode()) == source_name(b)
    code, _, err = publish(capsys, "--from", a, "--repo", "ns/ds")
    assert code == 2 and f"published from `{source_name(b)}`" in err
    code, again, _ = publish(capsys, "--from", b, "--repo", "ns/ds")
    assert code == 0 and again["up_to_date"] and "replaced" not in again


def test_a_card_named_by_an_earlier_version_or_none(test_hub, tmp_path, capsys):
    """A card written before cards named the source names it as the first folder of "How it was
    made", as it was given (a place): that folder is the same source; data/ files under a card
    that names no source are another's."""
    a, b = write_dataset(tmp_path / "tr-a", "from a"), write_dataset(tmp_path / "tr-b", "from b")
    assert publish(capsys, "--from", a, "--repo", "ns/old")[0] == 0
    repo = test_hub.repos[("dataset", "ns/old")]
    files = dict(repo.resolve("main").files)
    card = files["README.md"][0].decode()
    old = re.sub(r"^Published by .*\n", "", card, flags=re.M).replace(f"### `{source_name(a)}`",
                                                                       f"### `file://{a}`")
    assert "Published by" not in old and f"### `file://{a}`" in old
    files["README.md"] = (old.encode(), False)
    repo.branches["main"] = repo.commit(repo.branches["main"], files, "an older card").oid
    code, again, _ = publish(capsys, "--from", a, "--repo", "ns/old")
    assert code == 0 and again["uploaded"] == 1  # the card, now naming its source
    assert publish(capsys, "--from", b, "--repo", "ns/old")[0] == 2

    files = dict(repo.resolve("main").files)
    files["README.md"] = (b"# a dataset uploaded by hand\n", False)
    repo.branches["main"] = repo.commit(repo.branches["main"], files, "a hand-written card").oid
    before = writes(test_hub)
    code, _, err = publish(capsys, "--from", a, "--repo", "ns/old")
    assert code == 2 and err.count("error:") == 1
    assert ("--repo ns/old holds data/lua-00000-of-00001.parquet under a card that names no source "
            "folder") in err and writes(test_hub) == before


def test_a_branch_holds_one_source_too(test_hub, tmp_path, capsys):
    """A new branch starts at main's commit: another source there replaces nothing main loses."""
    a, b, c = (write_dataset(tmp_path / f"tr-{x}", f"from {x}") for x in "abc")
    assert publish(capsys, "--from", a, "--repo", "ns/br")[0] == 0
    assert publish(capsys, "--from", b, "--repo", "ns/br", "--revision", "v2")[0] == 0
    code, _, err = publish(capsys, "--from", c, "--repo", "ns/br", "--revision", "v2")
    assert code == 2 and f"--repo ns/br (branch v2) holds the dataset published from `{source_name(b)}`" in err
    assert b"from a" in main_files(test_hub, "ns/br")["data/lua-00000-of-00001.parquet"][0]
    assert b"from b" in main_files(test_hub, "ns/br", "v2")["data/lua-00000-of-00001.parquet"][0]


def test_a_dry_run_folder_holds_one_source(tmp_path, capsys):
    a, b = write_dataset(tmp_path / "tr-a", "from a"), write_dataset(tmp_path / "tr-b", "from b")
    dry = tmp_path / "dry"
    assert publish(capsys, "--from", a, "--repo", "ns/x", "--dry-run", str(dry))[0] == 0
    assert publish(capsys, "--from", a, "--repo", "ns/x", "--dry-run", str(dry))[0] == 0
    stamp = (dry / "data" / "lua-00000-of-00001.parquet").read_bytes()
    code, _, err = publish(capsys, "--from", b, "--repo", "ns/x", "--dry-run", str(dry))
    assert code == 2 and err.count("error:") == 1
    assert f"--dry-run {dry} (a dry run of ns/x) holds the dataset published from `{source_name(a)}`" in err
    assert "nothing was written: give another --dry-run folder, or --force" in err
    assert (dry / "data" / "lua-00000-of-00001.parquet").read_bytes() == stamp
    code, forced, _ = publish(capsys, "--from", b, "--repo", "ns/x", "--dry-run", str(dry), "--force")
    assert code == 0 and forced["replaced"] == source_name(a)
    assert b"from b" in (dry / "data" / "lua-00000-of-00001.parquet").read_bytes()


def test_a_folder_is_known_by_its_path_not_where_a_link_leads(tmp_path):
    """A stage container sees the data root bind-mounted at the host's path, where the host may
    reach the same folder through a link: the source name is the path as given (normalized), so
    a publication from either is the same source. Two different paths stay two sources."""
    real = tmp_path / "disk" / "tr"
    real.mkdir(parents=True)
    (tmp_path / "data").symlink_to(tmp_path / "disk")
    through_link = str(tmp_path / "data" / "tr")
    assert source_name(through_link) == source_name(f"file://{tmp_path}/data/./tr/")
    assert source_name(through_link) == source_name(str(tmp_path / "data" / "x" / ".." / "tr"))
    assert source_name(through_link) != source_name(str(real))
