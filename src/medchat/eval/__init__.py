"""Evaluation: metrics, the baseline, test-split quality, safety rates, the free-text set and the report."""
