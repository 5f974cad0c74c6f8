"""Integration: the demo and the drivers that run the node on bags for evaluation."""
