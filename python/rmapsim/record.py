"""``rmapsim.record``: recording programs under strace (``rmapsim record``), under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.tools.record`; this name is bound to
that same module object (not a copy), so ``import rmapsim.record``, ``from rmapsim.record
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .tools import record as _module
from .tools.record import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
