"""The book's Sphinx hooks, so that ``jupyter-book build book``, typed as it is, shows the
results as they are now.

- Every build re-reads every chapter. Sphinx re-reads only the sources whose text changed, so a
  second build after the results changed would keep the pages from before; the chapters are
  small and only read the results bundle, so all of them are executed again
  (``execute_notebooks: force`` in ``_config.yml`` makes re-reading mean re-executing).
- The chapters' kernel is ``book/_jupyter/kernels/python3``: the usual ipykernel command with
  its own log at error level, so a build does not print ipykernel's warning that its local
  sockets are unencrypted (a kernel started by the build on this machine, for this build).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

JUPYTER_DIR = Path(__file__).resolve().parent.parent / "_jupyter"


def every_chapter(app: Any, env: Any, added: set[str], changed: set[str],
                  removed: set[str]) -> list[str]:
    """Sphinx's ``env-get-outdated``: every known chapter is re-read, not only changed ones."""
    return sorted(set(env.found_docs) - set(removed) - set(added) - set(changed))


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-get-outdated", every_chapter)
    paths = [str(JUPYTER_DIR), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
