"""A stand-in for the AI fixer of the later phases, used by the demo.

execute-fix runs ``JOBS_FIXER_COMMAND`` inside the sandbox's checkout with
FIX_JOB_ID, BUG_REPORT_JSON, FIX_REPORT and SANDBOX set. This one fixes the demo
repository's bug and reports a (pretend) pull request.
"""

import json
import os
from pathlib import Path

app = Path("src/app.py")
app.write_text(app.read_text().replace("return a - b", "return a + b"))
print("fixed add() in src/app.py")
Path(os.environ["FIX_REPORT"]).write_text(json.dumps({
    "pr_url": f"https://git.example/sample/pulls/{os.environ['FIX_JOB_ID'][:8]}",
    "tests": "passed",
}))
