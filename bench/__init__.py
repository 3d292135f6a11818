"""Measure the exporter against the simulated BCC API and print one table of ratios."""
