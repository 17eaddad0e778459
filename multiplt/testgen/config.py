"""The typed configuration of one `multiplt testgen` run (written beside its output)."""

from __future__ import annotations

import dataclasses
import os

from multiplt.errors import MultipltError
from multiplt.generation.backends import NAMES as BACKENDS


def absolute_input(value: str | None) -> str | None:
    """An input as the run records it: a bare local path made absolute (against the folder the
    command runs from), so that the config names a place that holds from any folder (as
    `multiplt publish dataset` follows it); storage URIs (`file://`, `s3://`), and a value that
    reads as a mistyped one (`s3:/b/x`), as written."""
    from multiplt.storage import uri as uris

    if not value or uris._SCHEME.match(value) or uris.mistyped(value) is not None:
        return value
    return os.path.abspath(os.path.expanduser(value))


# The version of the validation rules (which asserts are kept, what passes, how coverage is
# measured): recorded in a shard's config.json and in every saved part of `checks/`, so a part
# saved under other rules is validated again rather than reused (execute.run_all). 2: only
# literal arguments and expected values; an exit while an assert runs fails it; coverage counts
# `# pragma: no cover` lines; a failed shared coverage run falls back to one run per assert.
# 3: Python runs under fixed hash seeds (python.HASH_SEED, validate.SCREEN_HASH_SEED) with
# `random` seeded per assert, and an assert whose verdict differs between the two seeds is Flaky.
# 4: a timeout or killed runner in the main run keeps its status (3 called it Flaky).
VALIDATION = 4

# MultiPL-T's coverage threshold: a function whose passing asserts cover less of its statements
# (in %) is dropped. The one default of `min_coverage`: TestgenConfig's and --min-coverage's.
MIN_COVERAGE = 90


@dataclasses.dataclass(frozen=True)
class TestgenConfig:
    __test__ = False  # not a pytest class

    functions: str
    out: str
    backend: str = "transformers"
    model: str | None = None
    revision: str | None = None
    tokenizer: str | None = None
    n: int = 5
    temperature: float = 0.2
    top_p: float = 0.95
    max_new_tokens: int = 400
    min_coverage: int = MIN_COVERAGE
    shard: tuple[int, int] | None = None
    workers: int | None = None
    timeout: float = 5.0
    replay_source: str | None = None
    seed: int = 0
    batch_size: int | None = None  # optional cap on sequences in flight (continuous batching)
    api_base: str | None = None
    concurrency: int | None = None
    unsafe_no_sandbox: bool = False

    def check(self, stage: str = "all") -> None:
        """Bad settings: MultipltError naming the problem (before anything is read or written).
        `stage`: the stage that runs; one that validates (`all`, `validate`) also checks
        MULTIPLT_TESTGEN_BATCH_ASSERTS and MULTIPLT_TESTGEN_SAVE_EVERY_S and, without --workers,
        MULTIPLT_CPUS, which gives the validation's default workers."""
        from multiplt.execution.executor import check_options, default_workers
        from multiplt.generation.driver import check_replay_source, check_sampling

        if self.backend not in BACKENDS:
            raise MultipltError(f"unknown generation backend {self.backend!r} "
                                f"(choose from {', '.join(BACKENDS)})")
        if self.backend == "replay" and not self.replay_source:
            raise MultipltError("the replay backend needs --replay-source (a completion folder or "
                                "JSONL of name+completion rows; name = the function's sha1)")
        if self.backend != "replay" and not self.model:
            raise MultipltError(f"the {self.backend} backend needs --model")
        check_replay_source(self.backend, self.replay_source)
        check_sampling(n=self.n, temperature=self.temperature, top_p=self.top_p,
                       max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                       concurrency=self.concurrency)
        if not 0 <= self.min_coverage <= 100:
            raise MultipltError(f"--min-coverage must be between 0 and 100, got {self.min_coverage}")
        check_options(self.workers, self.timeout)  # as execute's: a timeout in (0, one day]
        if stage in ("all", "validate"):
            if self.workers is None:
                default_workers()  # a bad MULTIPLT_CPUS now, not after the sampling
            from multiplt.testgen.execute import tuning

            tuning()  # likewise the validation's MULTIPLT_TESTGEN_* settings

    @property
    def shard_name(self) -> str:
        return f"shard-{self.shard[0]:05d}-of-{self.shard[1]:05d}" if self.shard else "shard-all"

    def as_dict(self) -> dict:
        """The shard's config.json: the settings, the validation rules' version and hash seeds,
        and `provenance` (multiplt.provenance: the code version, Python's and coverage.py's and
        the generation libraries' versions of the process that writes it), which is no part of
        the run's identity (pipeline.IDENTITY): a newer version of the code resumes a shard."""
        from multiplt import provenance
        from multiplt.languages.python import HASH_SEED
        from multiplt.testgen.validate import SCREEN_HASH_SEED

        d = dataclasses.asdict(self)
        d["shard"] = f"{self.shard[0]}/{self.shard[1]}" if self.shard else None
        d["validation"] = VALIDATION
        # the PYTHONHASHSEEDs the asserts ran under: the screening seed, then the main one
        d["python_hash_seeds"] = [SCREEN_HASH_SEED, HASH_SEED]
        d["provenance"] = provenance.describe(provenance.TESTGEN)
        return d
