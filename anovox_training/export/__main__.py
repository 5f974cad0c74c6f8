"""``python -m anovox_training.export``: see :mod:`anovox_training.export.run`."""

import sys

from anovox_training.export.run import main

sys.exit(main())
