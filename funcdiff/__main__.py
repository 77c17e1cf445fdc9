"""``python -m funcdiff``: the same as the ``funcdiff`` command."""

import sys

from funcdiff.commands import main

sys.exit(main())
