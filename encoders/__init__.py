"""boardgraph.encoders (see the issues for what lands here)."""
