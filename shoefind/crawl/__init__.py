"""Stage 1, crawl: image search in a real browser, safe downloads, the crawl manifest."""
