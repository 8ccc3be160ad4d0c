#!/usr/bin/env bash
# Keeps the documentation true to the repository (docs/building.md "The docs check"):
#   scripts/check-docs.sh path/to/gatewatch
# Fails (exit 1, one line per problem) when
#   - README.md is larger than 12,288 bytes;
#   - a relative link in README.md, docs/*.md or bench/README.md points at a missing file, or
#     at a heading that the linked Markdown file does not have;
#   - a docs/*.md or docs/*.yaml path cited in a tracked file does not exist, or a heading it
#     cites by name (the path, a space and the heading in double quotes) is missing;
#   - a tracked file points outside the repository for its contract (the two phrases are
#     assembled below, so this file does not match itself);
#   - the README's first ```toml block does not pass `gatewatch validate` (unset ${VARS} in it
#     get placeholder values);
#   - a metric name the daemon writes (gatewatch_* in daemon/*.cc, and the list of
#     tests/integration/deploy_test.cc) is missing from docs/metrics.md;
#   - docs/openapi.yaml does not parse as YAML (python3-yaml), or lacks `openapi` or `paths`.
# Bash and python3 (standard library, plus python3-yaml for the last check).
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 path/to/gatewatch" >&2
  exit 2
fi
binary=$1
if [[ ! -x $binary ]]; then
  echo "check-docs: $binary is not an executable gatewatch binary" >&2
  exit 2
fi
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
cd "$(dirname "$0")/.."
exec python3 - "$binary" <<'PY'
import os
import re
import subprocess
import sys
import tempfile

BINARY = sys.argv[1]
README_LIMIT = 12288
problems = []


def problem(text):
    problems.append(text)


def tracked_files():
    """Tracked files (git ls-files), or every file outside build and VCS folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True)
        return [p for p in out.stdout.decode("utf-8", "replace").split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk("."):
            dirs[:] = [d for d in dirs if not d.startswith(("build", ".git"))]
            files += [os.path.relpath(os.path.join(root, n), ".") for n in names]
        return files


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def without_fences(text):
    """Markdown text with fenced code blocks blanked out."""
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)


def without_code(text):
    """Markdown text with fenced code blocks and inline code spans blanked out."""
    return re.sub(r"`[^`\n]*`", "", without_fences(text))


def slug(heading):
    """GitHub's anchor for a heading."""
    heading = re.sub(r"`", "", heading.strip()).lower()
    heading = re.sub(r"[^\w\- ]", "", heading)
    return heading.replace(" ", "-")


def anchors(path):
    seen, result = {}, set()
    for line in without_fences(read(path)).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        result.add(s if n == 0 else f"{s}-{n}")
    return result


def headings(path):
    return [re.sub(r"`", "", m.group(1)).strip().lower()
            for m in re.finditer(r"^#{1,6}\s+(.*?)\s*$", without_fences(read(path)), re.M)]


files = tracked_files()

# 1. README size.
size = os.path.getsize("README.md")
if size > README_LIMIT:
    problem(f"README.md is {size} bytes; the limit is {README_LIMIT}")

# 2. Relative links (and their anchors) in the documentation.
docs = ["README.md", "bench/README.md"] + sorted(
    os.path.join("docs", n) for n in os.listdir("docs") if n.endswith(".md"))
for doc in docs:
    text = without_code(read(doc))
    for m in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text):
        target = m.group(1)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(resolved):
            problem(f"{doc}: link to {target}: {resolved} does not exist")
            continue
        if fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
            problem(f"{doc}: link to {target}: {resolved} has no heading #{fragment}")

# 3. docs/ paths cited in tracked files, and headings cited by name.
cited = re.compile(r"(?<![\w./-])docs/[\w.-]+\.(?:md|yaml)")
named = re.compile(r"(?<![\w./-])(docs/[\w.-]+\.md) \"([^\"\n]+)\"")
for path in files:
    if path.startswith("docs/") or not os.path.isfile(path):
        continue
    try:
        text = read(path)
    except OSError:
        continue
    for lineno, line in enumerate(text.splitlines(), 1):
        for doc in sorted(set(m.group(0) for m in cited.finditer(line))):
            if not os.path.exists(doc):
                problem(f"{path}:{lineno}: cites {doc}, which does not exist")
        for m in named.finditer(line):
            doc, title = m.group(1), m.group(2).strip().lower()
            if os.path.exists(doc) and title not in headings(doc):
                problem(f"{path}:{lineno}: cites {doc} \"{m.group(2)}\": no such heading")

# 4. Nothing points outside the repository for its contract.
# (spelled in pieces so that this line does not match itself)
outside = [".." + "/shared", "SP" + "EC" + " section"]
for path in files:
    if not os.path.isfile(path):
        continue
    try:
        text = read(path)
    except OSError:
        continue
    for lineno, line in enumerate(text.splitlines(), 1):
        for phrase in outside:
            if phrase in line:
                problem(f"{path}:{lineno}: mentions {phrase!r}: references must stay inside the repository")

# 5. The README's first config validates.
readme = read("README.md")
block = re.search(r"^```toml[^\n]*\n(.*?)^```", readme, re.S | re.M)
if block is None:
    problem("README.md: no ```toml block (the first config)")
else:
    env = dict(os.environ)
    for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", block.group(1))):
        env.setdefault(name, "https://placeholder.example.invalid/check-docs-0123456789")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "first.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(block.group(1))
        r = subprocess.run([BINARY, "validate", "--config", config], capture_output=True,
                           text=True, env=env, cwd=tmp, timeout=60)
        if r.returncode != 0:
            detail = " / ".join(r.stderr.strip().splitlines()[-5:])
            problem(f"README.md: the first config does not validate (exit {r.returncode}): {detail}")

# 6. Every metric the daemon writes is documented.
metrics_doc = read("docs/metrics.md")
names = set()
for path in files:
    if re.match(r"^daemon/[^/]+\.cc$", path):
        names |= set(re.findall(r"gatewatch_[a-z_]+(?![a-z_.])", read(path)))
spec_list = re.search(r"kSpecMetrics = \{(.*?)\};", read("tests/integration/deploy_test.cc"), re.S) \
    if os.path.exists("tests/integration/deploy_test.cc") else None
if spec_list:
    names |= set(re.findall(r"\"(gatewatch_[a-z_]+)\"", spec_list.group(1)))
names = {n for n in names if not n.endswith("_bucket")}
if len(names) < 10:
    problem(f"found only {len(names)} metric names in daemon/*.cc: the pattern is out of date")
for name in sorted(names):
    if not re.search(r"(?<![a-z_])" + re.escape(name) + r"(?![a-z_])", metrics_doc):
        problem(f"docs/metrics.md does not document the metric {name}")

# 7. The OpenAPI description parses.
try:
    import yaml
except ImportError:
    problem("python3-yaml is not installed (scripts/install-deps.sh --tests): cannot check docs/openapi.yaml")
else:
    try:
        with open("docs/openapi.yaml", encoding="utf-8") as f:
            spec = yaml.safe_load(f)
        if not isinstance(spec, dict) or "openapi" not in spec or not spec.get("paths"):
            problem("docs/openapi.yaml: not an OpenAPI document (no openapi or paths)")
    except (OSError, yaml.YAMLError) as e:
        problem("docs/openapi.yaml: " + " ".join(str(e).split()))

for p in problems:
    print("check-docs: " + p)
if problems:
    print(f"check-docs: {len(problems)} problem(s)")
    sys.exit(1)
print(f"check-docs: ok ({len(docs)} documents, {len(names)} metrics, README {size} bytes)")
PY
