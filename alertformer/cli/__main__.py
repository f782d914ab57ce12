"""``python -m alertformer.cli``: the same as the ``alertformer`` command."""
import sys

from alertformer.cli import main

sys.exit(main())
