"""Publishing to the Hugging Face Hub and watching it for new base models.

    repo_id.py      OWNER/NAME parsing and validation; branch names and license ids
    auth.py         the token (HF_TOKEN; in Airflow the `huggingface_default` connection, which
                    the stage runtime exports as HF_TOKEN) and its redaction from every log line
    retry.py        which Hub failures are retried (408/429/5xx, network) and the backoff
    client.py       the few Hub operations the publishers need, each behind the retry policy
    bundle.py       a set of files to publish: local paths by repo path, hashes, dry-run copies
    publish.py      push a bundle as one commit, or nothing when the branch already holds it
    cards.py        dataset, model and results cards (README.md with YAML front matter)
    dataset.py      `multiplt publish dataset`
    checkpoints.py  `multiplt publish checkpoints`
    results.py      `multiplt publish results`
    access.py       whether the token may read a repo (auth-check: gated repos)
    watch.py        the watch list and the model listing used by the new-model trigger

Nothing here imports Airflow; huggingface_hub is imported inside functions.
"""
