import sys

from tada_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
