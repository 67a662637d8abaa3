import sys

from spineseg_core.cli import main

sys.exit(main())
