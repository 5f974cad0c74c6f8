"""``python -m anovox_training.train``: see :mod:`anovox_training.train.trainer`."""

import sys

from anovox_training.train.trainer import main

sys.exit(main())
