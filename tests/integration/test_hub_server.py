"""The test Hub speaks enough of the Hub protocol for huggingface_hub 2.4.0's real client."""

import pytest


def test_publish_tag_and_download(test_hub, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import RevisionNotFoundError

    api = HfApi()
    assert api.whoami()["name"] == test_hub.user
    api.create_repo("ns/demo")
    api.create_repo("ns/demo", exist_ok=True)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text('{"a": 1}')
    (src / "README.md").write_text("---\nlicense: mit\n---\n# demo\n")
    (src / "sub" / "w.bin").write_bytes(bytes(range(256)) * 10)
    first = api.upload_folder(folder_path=str(src), repo_id="ns/demo", commit_message="epoch1")
    api.create_tag("ns/demo", tag="rkt-x-epoch1", revision=first.oid)
    (src / "config.json").write_text('{"a": 2}')
    api.upload_folder(folder_path=str(src), repo_id="ns/demo", commit_message="epoch2")
    refs = api.list_repo_refs("ns/demo")
    assert [t.name for t in refs.tags] == ["rkt-x-epoch1"]
    assert sorted(api.list_repo_files("ns/demo", revision="rkt-x-epoch1")) == [
        ".gitattributes", "README.md", "config.json", "sub/w.bin"]
    old = hf_hub_download("ns/demo", "config.json", revision="rkt-x-epoch1")
    assert open(old).read() == '{"a": 1}'
    snap = snapshot_download("ns/demo")
    assert open(f"{snap}/config.json").read() == '{"a": 2}'
    assert open(f"{snap}/sub/w.bin", "rb").read() == bytes(range(256)) * 10
    assert api.model_info("ns/demo", revision="rkt-x-epoch1").sha == first.oid
    with pytest.raises(RevisionNotFoundError):
        api.model_info("ns/demo", revision="nope")
    assert [m.id for m in api.list_models(author="ns")] == ["ns/demo"]
    api.create_branch("ns/demo", branch="dev")
    api.delete_tag("ns/demo", tag="rkt-x-epoch1")
    assert not api.list_repo_refs("ns/demo").tags
    assert [c.title for c in api.list_repo_commits("ns/demo")][:2] == ["epoch2", "epoch1"]
