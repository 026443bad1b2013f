"""Surrogate networks: coordinate MLPs, vector-field nets."""
