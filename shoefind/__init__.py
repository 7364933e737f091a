"""shoefind: find a shoe's name from a photo with CLIP.

A plain library: small modules, pure functions where possible, no Prefect.
"""
__version__ = "0.1.0"
