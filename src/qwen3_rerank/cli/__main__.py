"""``python -m qwen3_rerank.cli COMMAND ...``: the same as the ``qwen3-rerank`` console script."""

import sys

from . import main

sys.exit(main())
