"""Attack: reach PostgreSQL (TCP and its unix socket), the Docker socket, anything."""

import json
import socket
import sys

reached = []
for target in sys.argv[1:]:
    host, _, extra = target.partition(":")  # host, or host:port for one more port
    for port in (5432, 80, 443, 2375, *([int(extra)] if extra else [])):
        try:
            socket.create_connection((host, port), timeout=2).close()
            reached.append(f"{host}:{port}")
        except OSError:
            pass
for path in ("/run/postgresql/.s.PGSQL.5432", "/var/run/postgresql/.s.PGSQL.5432",
             "/tmp/.s.PGSQL.5432", "/var/run/docker.sock", "/run/docker.sock"):
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.settimeout(2)
        sock.connect(path)
        reached.append(path)
    except OSError:
        pass
    finally:
        sock.close()
try:
    socket.getaddrinfo("deb.debian.org", 443)
    reached.append("dns")
except OSError:
    pass
print(json.dumps({"reached": reached}))
