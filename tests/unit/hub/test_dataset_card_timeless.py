"""The dataset card is a function of what was made, not of when (multiplt/hub/cards.py
`dataset_card`): a byte-identical rebuild whose funnels differ only in their wall-clock
timings gives the same card, so republishing it makes no new Hub commit."""

from __future__ import annotations

from multiplt.hub.cards import dataset_card


def _stages(seconds: float) -> list[dict]:
    funnel = {"steps": [{"name": "extract", "in": 3, "out": 2, "seconds": seconds},
                        {"name": "dedup", "in": 2, "out": 2, "signature_seconds": seconds / 2}],
              "merge_seconds": seconds * 3, "source": "py-files"}
    return [{"uri": "corpus", "configs": {}, "funnels": {"funnel.json": funnel}}]


def test_timings_leave_the_card_unchanged_and_counts_stay():
    first = dataset_card("ns/d", {"lua": 1}, {"content": "string"}, _stages(1.234), "mit")
    again = dataset_card("ns/d", {"lua": 1}, {"content": "string"}, _stages(9.876), "mit")
    assert first == again
    assert "seconds" not in first
    assert '"in": 3' in first and '"name": "dedup"' in first and '"source": "py-files"' in first
