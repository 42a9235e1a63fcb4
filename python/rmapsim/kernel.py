"""``rmapsim.kernel``: the live-kernel validation (``rmapsim validate-kernel``), under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.tools.kernel`; this name is bound to
that same module object (not a copy), so ``import rmapsim.kernel``, ``from rmapsim.kernel
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .tools import kernel as _module
from .tools.kernel import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
