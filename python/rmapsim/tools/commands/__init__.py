"""The ``rmapsim`` subcommands, one module each (named after the subcommand, ``-`` as
``_``). Each has ``register(sub)``, which adds its parser with its own arguments and sets
``run``, the function that runs it; :mod:`rmapsim.tools.cli` registers them in order."""
