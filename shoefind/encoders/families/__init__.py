"""The model families shoefind loads, one module each, and their registry (see FAMILIES)."""
