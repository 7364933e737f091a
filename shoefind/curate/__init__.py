"""Stage 2, curate: crawl rules, duplicate hashing, semantic checks, the review queue and page."""
