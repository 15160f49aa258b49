#!/usr/bin/env bash
# scripts/meson-dir.sh DIR [-Dname=value...] — make DIR a meson build
# directory of this checkout with exactly these options: set it up when
# missing; when it exists (e.g. a build/ scripts/demo.sh made without
# -Dwerror=true), reconfigure the options that differ, so a build
# directory never silently keeps weaker settings than the caller asked for.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
dir=$1
shift
if [ ! -f "$dir/build.ninja" ]; then
    echo "==> meson setup $dir $*" >&2
    exec meson setup "$dir" "$@" >&2
fi
differ=$(/usr/bin/python3 - "$dir" "$@" <<'PYEOF'
import json, subprocess, sys
out = subprocess.run(["meson", "introspect", sys.argv[1], "--buildoptions"],
                     stdout=subprocess.PIPE, text=True).stdout
current = {o["name"]: o["value"] for o in json.loads(out or "[]")}
for arg in sys.argv[2:]:
    name, want = arg[2:].split("=", 1)
    have = current.get(name)
    if isinstance(have, bool):
        have = "true" if have else "false"
    elif isinstance(have, list):
        have = ",".join(have)
    if str(have) != want:
        print("%s=%s (was %s)" % (name, want, have))
PYEOF
)
if [ -n "$differ" ]; then
    echo "==> meson configure $dir: $(echo $differ)" >&2
    meson configure "$dir" "$@" >&2 || exit 1
fi
exit 0
