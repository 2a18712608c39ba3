"""Methods: baselines and the five paper methods, registered by name.

Importing this package registers every built-in method; :func:`create_method` looks one up.
"""

from affectlab.methods import (  # noqa: F401  (registration)
    baselines,
    clmer,
    dhcm_cacl,
    m2s,
    me_mhacl,
    uf_ama,
)
from affectlab.methods.base import (
    METHODS,
    Method,
    MethodConfig,
    Predictions,
    Split,
    baseline_inputs,
    build_config,
    create_method,
    register_method,
)

__all__ = ["METHODS", "Method", "MethodConfig", "Predictions", "Split", "baseline_inputs",
           "build_config", "create_method", "register_method"]
