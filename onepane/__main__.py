"""`python -m onepane` is the `onepane` command."""

import sys

from onepane.cli import main

sys.exit(main())
