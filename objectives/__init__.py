"""boardgraph.objectives (see the issues for what lands here)."""
