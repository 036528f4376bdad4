"""`python -m bench` (`make bench`): every benchmark of the project, printed side by side."""

import sys

from bench.serving import main

sys.exit(main())
