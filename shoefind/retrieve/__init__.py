"""Answering: zero-shot attributes, 5-step identification, change in words, text search."""
