"""``rmapsim.cluster``: the Dask executor of the studies, under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.studies.cluster`; this name is bound to
that same module object (not a copy), so ``import rmapsim.cluster``, ``from rmapsim.cluster
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .studies import cluster as _module
from .studies.cluster import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
