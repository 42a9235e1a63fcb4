"""``rmapsim.study``: the parameter sweeps (``rmapsim study``), under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.studies.study`; this name is bound to
that same module object (not a copy), so ``import rmapsim.study``, ``from rmapsim.study
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .studies import study as _module
from .studies.study import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
