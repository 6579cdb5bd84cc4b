#!/usr/bin/env python3
"""Every relative link in the Markdown docs points at a file that exists (run by .ci/run).

The docs cite committed raw output for every figure; a link to a file that was never
committed (or was moved) silently breaks that promise. Web links and in-page anchors
are not checked (no network here)."""
import glob, os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.chdir(root)
pages = ["README.md"] + glob.glob("docs/*.md") + glob.glob("loadtest/**/*.md", recursive=True) + glob.glob("deploy/**/*.md", recursive=True)
broken = []
for page in pages:
    base = os.path.dirname(page)
    for match in re.finditer(r"\]\(([^)\s]+)\)", open(page, encoding="utf-8").read()):
        target = match.group(1)
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = target.split("#")[0]
        if path and not os.path.exists(os.path.normpath(os.path.join(base, path))):
            broken.append(f"{page}: {target}")
for line in broken:
    print("broken link:", line)
print(f"{len(pages)} pages checked, {len(broken)} broken links")
sys.exit(1 if broken else 0)
