import sys

from multiplt.cli import main

sys.exit(main())
