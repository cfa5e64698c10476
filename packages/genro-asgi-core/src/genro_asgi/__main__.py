"""``python -m genro_asgi``: the same as the ``genro-asgi`` command."""

import sys

from .cli import main

sys.exit(main())
