#!/bin/sh
# A fixer that hangs, with children of its own, one in a session of its own:
# all must die at the time limit. The sleeps last $HANG_SECONDS (an
# allow-listed variable), a number the test looks for among the host's processes.
sleep "$HANG_SECONDS" &
setsid sleep "$HANG_SECONDS" &
wait
