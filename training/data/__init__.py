"""Demonstration data: datasets, scripted experts and the synthetic reach task."""
