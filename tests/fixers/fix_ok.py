"""A stand-in for the AI fixer: fixes the sample bug and reports a PR."""

import json
import os
from pathlib import Path

app = Path("src/app.py")
app.write_text(app.read_text().replace("return a - b", "return a + b"))
Path("NOTES.md").write_text("fixed add()\n")
print("fixed src/app.py")
Path(os.environ["FIX_REPORT"]).write_text(json.dumps(
    {"pr_url": f"https://git.example/pulls/{os.environ['FIX_JOB_ID'][:8]}", "tests": "passed"}))
