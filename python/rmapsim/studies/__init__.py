"""Studies on top of the library: :mod:`.workloads` (named workloads), :mod:`.study` (parameter
sweeps over workloads, eras and knobs), :mod:`.cluster` (a Dask executor for them) and
:mod:`.perfetto` (contention replays as a Perfetto trace). Public as ``rmapsim.workloads``,
``rmapsim.study``, ``rmapsim.cluster`` and ``rmapsim.perfetto`` (docs/api-contract.md)."""
