"""The asset graphs, one module per area; each module exposes ``defs``."""
