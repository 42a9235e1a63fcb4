"""Era policies as data: :class:`Policy` and the knob catalogue.

An era is a preset of orthogonal knobs (see :func:`knobs` for each knob's meaning and the
kernel change that introduced it). A variant changes knobs of a preset; it is written as an
era spec, ``BASE[+knob=value[,knob=value...]]``, accepted wherever an era name is::

    sim = rmapsim.Simulator(era="6.0+fork_reuse=never")
    p = rmapsim.Policy.preset("6.0").replace(fork_reuse="never")   # the same variant
    str(p)                                                         # '6.0+fork_reuse=never'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, NamedTuple, Tuple

from . import _core
from .errors import InvalidArgument, short_repr


class Knob(NamedTuple):
    name: str
    meaning: str
    kernel: str


def knobs() -> List[Knob]:
    """Every policy knob: name, meaning, and the kernel change that introduced it."""
    return [Knob(*k) for k in _core.knobs()]


def _text(knob: str, v: Any) -> str:
    """A knob value as text: a string, a bool ("true"/"false") or an int."""
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (str, int, np.integer)):
        return str(v)
    raise InvalidArgument(f"knob {short_repr(knob)} must be given as a string, bool or int, got {short_repr(v)}")


@dataclass(frozen=True)
class Policy:
    """A preset (``base``) plus knob values. Immutable; :meth:`replace` makes variants."""

    base: str
    values: Tuple[Tuple[str, str], ...]

    @classmethod
    def preset(cls, name: str) -> Policy:
        """The knobs of an era preset (``rmapsim.eras()``) or of an era spec
        (``"6.0+fork_reuse=never"``)."""
        if isinstance(name, Policy):
            return name
        if not isinstance(name, str):
            raise InvalidArgument(f"era must be a string or a rmapsim.Policy, got {short_repr(name)}")
        spec = _core.spec(name)  # canonical: the core parses it and writes it back
        return cls(base=spec.split("+", 1)[0], values=tuple(_core.preset(spec)))

    @classmethod
    def parse(cls, spec: str) -> Policy:
        """The policy of an era spec, ``BASE[+knob=value[,knob=value...]]``; the inverse
        of ``str(policy)``."""
        return cls.preset(spec)

    def __str__(self) -> str:
        """The canonical era spec: the base, then each knob that differs from it, in knob
        order."""
        return _core.spec(self.base, self.as_dict())

    def __repr__(self) -> str:
        args = [repr(self.base)] + [f"{k}={v!r}" for k, v in self.overrides().items()]
        return f"Policy({', '.join(args)})"

    def as_dict(self) -> Dict[str, str]:
        return dict(self.values)

    def __getitem__(self, knob: str) -> str:
        d = self.as_dict()
        if not isinstance(knob, str) or knob not in d:
            raise InvalidArgument(f"unknown knob {short_repr(knob)}; knobs: {', '.join(d)}")
        return d[knob]

    def replace(self, **changes: Any) -> Policy:
        """A copy with some knobs changed (values as text, bools or ints)."""
        d = self.as_dict()
        for k, v in changes.items():
            if k not in d:
                raise InvalidArgument(f"unknown knob {short_repr(k)}; knobs: {', '.join(d)}")
            d[k] = _text(k, v)
        return Policy(base=self.base, values=tuple(d.items()))

    def overrides(self) -> Dict[str, str]:
        """Knobs that differ from the base preset."""
        base = dict(_core.preset(self.base))
        return {k: v for k, v in self.values if base.get(k) != v}


def era_spec(era: Any) -> str:
    """The canonical era spec of ``era``: a preset name, an era spec string or a
    :class:`Policy`. An unknown era or knob raises InvalidArgument quoting the spec."""
    if isinstance(era, Policy):
        return str(era)
    if not isinstance(era, str):
        raise InvalidArgument(f"era must be an era name, an era spec or a rmapsim.Policy, got {short_repr(era)}")
    return _core.spec(era)


def policy_overrides(policy: Policy | Mapping[str, Any] | None) -> Tuple[str | None, Dict[str, str] | None]:
    """(base era, knob overrides) for ``Simulator(policy=...)``."""
    if policy is None:
        return None, None
    if isinstance(policy, Policy):
        return policy.base, policy.as_dict()
    if isinstance(policy, Mapping):
        for k in policy:
            if not isinstance(k, str):
                raise InvalidArgument(f"policy knob names must be strings, got {short_repr(k)}")
        return None, {k: _text(k, v) for k, v in policy.items()}
    raise InvalidArgument(f"policy must be a rmapsim.Policy or a dict of knobs, got {short_repr(policy)}")


def holes_override(holes: object, overrides: Dict[str, str] | None) -> Dict[str, str]:
    """The knob overrides with ``holes`` (``Simulator(..., holes=...)``) added: "strict" or
    "kernel"; a ``policy`` that sets the knob to another value contradicts it."""
    if not isinstance(holes, str) or holes not in ("strict", "kernel"):
        raise InvalidArgument(f'holes must be "strict" or "kernel", got {short_repr(holes)}')
    out = dict(overrides or {})
    if out.get("holes", holes) != holes:
        raise InvalidArgument(f"holes={short_repr(holes)} contradicts the policy's holes={short_repr(out['holes'])}")
    out["holes"] = str(holes)
    return out


def kernel_holes(era: str) -> str:
    """The canonical spec of ``era`` with ``holes=kernel`` (unless it sets it already): how
    a trace of a real program (``rmapsim record``) replays in any era, since real programs
    munmap ranges with nothing mapped and mprotect or madvise ranges with holes."""
    spec = era_spec(era)
    if "holes=" in spec:
        return spec
    return era_spec(spec + ("," if "+" in spec else "+") + "holes=kernel")


def trace_wants_kernel_holes(text: str) -> bool:
    """Does the trace's ``# era`` header line ask for ``holes=kernel`` (a recorded trace)?"""
    for line in text.splitlines():
        if line.strip().startswith("# era "):
            return "holes=kernel" in line
    return False
