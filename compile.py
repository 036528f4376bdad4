"""`python compile.py [--component-image IMAGE] [--output-dir DIR]`: the same as `vsp compile`."""

import sys

from pipelines.compile import main

if __name__ == "__main__":
    sys.exit(main())
