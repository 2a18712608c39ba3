"""Losses shared by the methods; each function cites the paper equation it implements."""

from affectlab.losses.affinity import affinity_bce
from affectlab.losses.contrastive import info_nce, nt_xent
from affectlab.losses.mmd import mk_mmd

__all__ = ["affinity_bce", "info_nce", "mk_mmd", "nt_xent"]
