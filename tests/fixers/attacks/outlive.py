"""Attack: outlive the time limit. Background children with their fds closed,
new sessions, a double fork, SIGTERM ignored. argv[1] is a unique sleep length
the test looks for among the host's processes."""

import os
import signal
import subprocess
import sys
import time

seconds = sys.argv[1]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for _ in range(20):
    subprocess.Popen(["sleep", seconds], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
if os.fork() == 0:  # a daemon: double fork, new session
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 3)
        os.execvp("sleep", ["sleep", seconds])
    os._exit(0)
print("started", flush=True)
while True:
    time.sleep(1)
