"""Sub-commands of ``spineseg``, one module each (discovered by :mod:`spineseg_core.cli`)."""
