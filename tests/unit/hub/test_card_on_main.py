"""`publish checkpoints` reads the card on main by itself (one download of README.md; the Hub's
404 `EntryNotFound` means no card), not by listing the whole tree of main to see whether one
is there; against the test Hub, which answers a missing file as the Hub does."""

from __future__ import annotations

import pytest

from multiplt.errors import MultipltError
from multiplt.hub import cards, checkpoints
from multiplt.hub.client import HubClient
from tests.support.hub import TOKEN


def card() -> str:
    out = {"config": {"lang": "lua", "experiment": "multiplt", "base": "org/a"},
           "rows": [{"tag": "lua-multiplt-epoch1", "lang": "lua", "epoch": 1, "step": 10,
                     "eval_loss": 1.5}]}
    return cards.model_card("me/m", [out], {"lua-multiplt-epoch1": 0.25}, "mit", "humaneval", (161,))


def test_the_card_on_main_is_read_without_listing_the_tree(test_hub):
    repo = test_hub.add_model("me/m")
    client = HubClient(TOKEN, "me/m", "model")
    head = repo.branches["main"]
    test_hub.requests.clear()
    assert checkpoints._card_on_main(client, head) is None  # a new repo: no README.md
    assert not [path for _, path in test_hub.requests if "/tree/" in path]
    assert ("HEAD", f"/me/m/resolve/{head}/README.md") in test_hub.requests  # answered 404

    files = {**repo.commits[head].files, "README.md": (card().encode(), False)}
    head = repo.branches["main"] = repo.commit(head, files, "card").oid
    test_hub.requests.clear()
    kept = checkpoints._card_on_main(client, head)
    assert kept.scores == {"lua-multiplt-epoch1": 0.25} and kept.tags == {"lua-multiplt-epoch1"}
    assert not [path for _, path in test_hub.requests if "/tree/" in path]
    assert checkpoints._card_on_main(client, None) is None  # no main branch


def test_only_a_missing_file_reads_as_no_card(test_hub):
    """A revision or repo the Hub does not have is an error, not an empty card."""
    test_hub.add_model("me/m")
    with pytest.raises(MultipltError, match="HTTP 404"):
        checkpoints._card_on_main(HubClient(TOKEN, "me/m", "model"), "0" * 40)
    with pytest.raises(MultipltError, match="HTTP 404"):
        checkpoints._card_on_main(HubClient(TOKEN, "me/gone", "model"), "0" * 40)
