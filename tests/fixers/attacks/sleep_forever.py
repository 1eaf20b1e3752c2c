"""A fixer that runs until it is stopped (the worker running it gets SIGKILLed)."""

import sys
import time

print("running", sys.argv[1:], flush=True)
while True:
    time.sleep(1)
