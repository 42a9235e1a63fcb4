"""Shared fixtures, hypothesis profiles and the failure pictures of the rmapsim test suite.

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

import helpers
from helpers import CORRECT_ERAS, ERAS, RC1_INVARIANTS, invariant_number

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
    """A fresh simulator, once per era under test (all eras, 2.6.34-rc1 included)."""
    s = rmapsim.Simulator(era=era, seed=0)
    assert s.era == era
    yield s
    if getattr(s, "_rmapsim_tests_broken", False):
        # the test declared (and checked, helpers.expect_broken) that it drove the buggy
        # 2.6.34-rc1 into one of its bugs: the breakage must still be one of those bugs'
        assert era not in CORRECT_ERAS
        with pytest.raises(rmapsim.InvariantViolation) as ei:
            s.check()
        assert invariant_number(ei.value) in RC1_INVARIANTS, str(ei.value)
    else:
        # Every other test leaves a simulator whose invariants (docs/contract.md#invariants) hold --
        # in 2.6.34-rc1 too, unless the test said otherwise.
        s.check()


# --------------------------------------------------------------------------- failure pictures
# Every Simulator made during a test is tracked (helpers.track); a failing test's report gets
# a section with every process's address-space picture of each (helpers.failure_pictures).

_simulator_init = rmapsim.Simulator.__init__


def _tracked_init(self, *args, **kwargs):
    _simulator_init(self, *args, **kwargs)
    helpers.track(self)


rmapsim.Simulator.__init__ = _tracked_init


def pytest_runtest_setup(item):
    helpers.clear_tracked()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and helpers.tracked():
        report.sections.append(
            ("rmapsim address spaces (every process of every simulator the test made)", helpers.failure_pictures())
        )
