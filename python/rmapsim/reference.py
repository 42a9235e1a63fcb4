"""``rmapsim.reference``: the pure-Python reference model of 2.6.33/2.6.34, under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.testing.reference`; this name is bound to
that same module object (not a copy), so ``import rmapsim.reference``, ``from rmapsim.reference
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .testing import reference as _module
from .testing.reference import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
