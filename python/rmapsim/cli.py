"""``rmapsim.cli``: the command line (``rmapsim``, ``python -m rmapsim``), under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.tools.cli`; this name is bound to
that same module object (not a copy), so ``import rmapsim.cli``, ``from rmapsim.cli
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .tools import cli as _module
from .tools.cli import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
