"""boardgraph.sampling (see the issues for what lands here)."""
