"""``python -m molvae.cli`` (and ``torchrun -m molvae.cli``) runs the ``molvae`` command."""

import sys

from molvae.cli import main

sys.exit(main())
