"""A fixer that crashes."""

import sys

print("looking at the bug")
sys.exit("fixer crashed: model unavailable")
