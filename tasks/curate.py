"""Tasks of the crawl filter: each works on a batch of paths, never on one image."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from shoefind.curate.crawl_checks import check_files, load_crawl_rules
from shoefind.curate.filter import hash_files
from shoefind.curate.semantic import load_checker


@task(name="hash-files", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def hash_files_task(paths: list[str]) -> list[str]:
    return hash_files(paths)


@task(name="check-images", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def check_images_task(paths: list[str], shas: list[str | None], rules_name: str = "crawl_rules") -> list:
    return check_files(paths, load_crawl_rules(rules_name), shas)


@task(name="semantic-scores", cache_policy=NO_CACHE)
def semantic_scores_task(paths: list[str], model: str | None, prompts_name: str = "filter_prompts") -> list:
    checker, note, detail = load_checker(model, prompts_name)  # the model is loaded once per process
    if checker is None:
        raise RuntimeError(f"{note}: {detail}")
    return checker.scores(paths)


class PrefectBatchRunner:
    """Runs the filter's batched steps as Prefect tasks (one task run per batch, run concurrently)."""

    def __init__(self, model: str | None, rules_name: str = "crawl_rules", prompts_name: str = "filter_prompts"):
        self.model, self.rules_name, self.prompts_name = model, rules_name, prompts_name

    def hash(self, batches):
        return [f.result() for f in [hash_files_task.submit(b) for b in batches]]

    def check(self, batches, shas):
        return [f.result() for f in [check_images_task.submit(b, s, self.rules_name) for b, s in zip(batches, shas)]]

    def semantic(self, batches):
        # one at a time: the model already uses every core
        return [semantic_scores_task(b, self.model, self.prompts_name) for b in batches]
