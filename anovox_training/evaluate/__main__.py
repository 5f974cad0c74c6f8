"""``python -m anovox_training.evaluate``: see :mod:`anovox_training.evaluate.run`."""

import sys

from anovox_training.evaluate.run import main

sys.exit(main())
