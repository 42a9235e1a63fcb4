"""The command line and the tools behind it: :mod:`.cli` (the entry point) and
:mod:`.commands` (one module per subcommand), :mod:`.kernel` (``validate-kernel``: the
live kernel against an era), :mod:`.record` (``record``: programs under strace as traces).
The library these use is the package above; nothing in it imports from here except the
documented old names (``rmapsim.cli``, ``rmapsim.kernel``, ``rmapsim.record``)."""
