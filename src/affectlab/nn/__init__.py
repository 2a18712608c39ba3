"""Layers shared by more than one method (attention variants, encoders, heads)."""
