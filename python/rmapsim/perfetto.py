"""``rmapsim.perfetto``: the Perfetto export of contention replays, under the name documented in
docs/api-contract.md. The code lives in :mod:`rmapsim.studies.perfetto`; this name is bound to
that same module object (not a copy), so ``import rmapsim.perfetto``, ``from rmapsim.perfetto
import ...`` and attributes set on either name (monkeypatching) all reach the one module.
"""

import sys

from .studies import perfetto as _module
from .studies.perfetto import *  # noqa: F403 (the names for a loader that keeps this module object)

sys.modules[__name__] = _module
