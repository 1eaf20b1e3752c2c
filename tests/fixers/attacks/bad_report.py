"""Attack: a report with NUL bytes, bytes that are not UTF-8 and an over-long pr_url."""

import os

with open(os.environ["FIX_REPORT"], "wb") as report:
    report.write(b'{"pr_url": "https://x.example/' + b"a" * 5000 + b'", "tests": "passed",'
                 b' "summary": "ok\\u0000 \xff\xfe done"}')
os.write(1, b"nul \x00 and \xff bytes in the output\n")
