"""`python -m localvertex`: runs the emulator in the foreground (what `vsp emulator up` starts)."""

import sys

from localvertex.emulator import main

sys.exit(main())
