"""Attack: take far more memory than the limit."""

chunks = []
while True:
    chunks.append(bytearray(16 * 2**20))  # written, so really resident
    chunks[-1][::4096] = b"x" * len(chunks[-1][::4096])
