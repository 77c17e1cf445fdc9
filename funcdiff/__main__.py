"""``python -m funcdiff``: the same as the ``funcdiff`` command."""

import sys

from funcdiff.cli import main

sys.exit(main())
