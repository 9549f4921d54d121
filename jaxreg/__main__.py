"""``python -m jaxreg check PATH...``: see :mod:`jaxreg._cli`."""

import sys

from jaxreg._cli import main

sys.exit(main())
