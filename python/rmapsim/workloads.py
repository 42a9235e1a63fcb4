"""``rmapsim.workloads``: the named workloads of the studies, under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.studies.workloads`; this name is bound to
that same module object (not a copy), so ``import rmapsim.workloads``, ``from rmapsim.workloads
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .studies import workloads as _module
from .studies.workloads import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
