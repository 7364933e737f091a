"""Measuring: top-1/top-5 per attribute, method comparisons, composed retrieval, reports."""
