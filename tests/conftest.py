"""Shared fixtures and hypothesis profiles for the rmapsim test suite.

Hypothesis profile: RMAPSIM_HYPOTHESIS_PROFILE=fast (default, CI) or slow (nightly/fuzz).
"""

from __future__ import annotations

import os
import warnings

import pytest
from hypothesis import HealthCheck, settings

# When a hypothesis test fails, hypothesis imports libcst to write a patch of the failing
# example; that import emits a DeprecationWarning (mypy_extensions.TypedDict) which
# `filterwarnings = error` turns into an INTERNALERROR hiding the real failure. Import it once
# here with warnings silenced so the later import is a no-op.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
        import libcst.metadata  # noqa: F401
    except ImportError:
        pass

import rmapsim

from _simutil import ERAS

settings.register_profile(
    "fast",
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "slow",
    max_examples=400,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("RMAPSIM_HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture(params=ERAS)
def era(request) -> str:
    return request.param


@pytest.fixture
def sim(era):
    """A fresh simulator, once per era under test."""
    s = rmapsim.Simulator(era=era, seed=0)
    assert s.era == era
    yield s
    # Every test leaves a simulator whose invariants (SPEC.md section 5) still hold.
    s.check()
