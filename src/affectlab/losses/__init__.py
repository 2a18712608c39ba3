"""Losses shared by the methods; each function cites the paper equation it implements."""

from affectlab.losses.affinity import affinity_bce
from affectlab.losses.club import CLUBNet, club_upper_bound
from affectlab.losses.contrastive import info_nce, nt_xent
from affectlab.losses.cpc import M2MCPC, m2m_cpc_terms
from affectlab.losses.evidential import (
    dempster_combine,
    dirichlet_opinion,
    evidential_loss,
    opinion_to_dirichlet,
)
from affectlab.losses.mmd import mk_mmd
from affectlab.losses.temporal import sequence_loss, temporal_contrastive_loss

__all__ = ["CLUBNet", "M2MCPC", "affinity_bce", "club_upper_bound", "dempster_combine",
           "dirichlet_opinion", "evidential_loss", "info_nce", "m2m_cpc_terms", "mk_mmd",
           "nt_xent", "opinion_to_dirichlet", "sequence_loss", "temporal_contrastive_loss"]
