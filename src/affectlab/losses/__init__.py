"""Losses shared by the methods; each function cites the paper equation it implements."""

from affectlab.losses.contrastive import info_nce, nt_xent

__all__ = ["info_nce", "nt_xent"]
