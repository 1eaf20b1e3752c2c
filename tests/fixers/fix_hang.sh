#!/bin/sh
# A fixer that hangs, with a child of its own: both must die at the time limit.
# It leaves both pids in $PID_DIR for the test to check.
echo "$$" > "$PID_DIR/fixer.pid"
sleep 301 &
echo "$!" > "$PID_DIR/child.pid"
wait
