"""Which Airflow DAG runs made a dataset: the runs whose Asset events announced its folder (the
UI's Datasets page links them)."""

from __future__ import annotations

from multiplt.results.datasets import Dataset


def _under(uri: str, folder: str) -> bool:
    return uri.startswith(folder.rstrip("/") + "/")


def runs_for(dataset: Dataset, events: list[dict]) -> list[dict]:
    """The DAG runs that announced this dataset, from Airflow asset events ({dag_id, run_id,
    uri, extra}), in the order given and once each: an event of the dataset's DAG whose asset
    URI is the folder, inside it or above it, or whose `extra` names the folder or a place inside
    it (the corpus and testgen DAGs announce `<folder>/functions` and `<folder>/tests` under Asset
    URIs of their own); an event whose `extra` or Asset URI names another language is not this
    split's."""
    found, seen = [], set()
    for event in events:
        if event.get("dag_id") != dataset.dag_id or not event.get("run_id"):
            continue
        extra = event.get("extra") or {}
        if dataset.lang and extra.get("lang") and extra["lang"] != dataset.lang:
            continue
        uri = str(event.get("uri") or "").rstrip("/")
        if dataset.split and _under(uri, f"{dataset.uri}/data") and uri != f"{dataset.uri}/data/{dataset.split}":
            continue  # another language's Asset (`<out>/data/<split>`)
        named = {str(v).rstrip("/") for v in extra.values() if isinstance(v, str)}
        if (dataset.uri in named or any(_under(value, dataset.uri) for value in named)
                or uri == dataset.uri or _under(uri, dataset.uri)
                or _under(dataset.uri, uri)) and event["run_id"] not in seen:
            seen.add(event["run_id"])
            found.append({"dag_id": event["dag_id"], "run_id": event["run_id"],
                          "timestamp": event.get("timestamp")})
    return found
