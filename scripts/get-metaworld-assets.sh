#!/usr/bin/env bash
# get-metaworld-assets.sh [DIR]: Meta-World's original scenes for sp's 11 tasks, from PyPI alone.
#
# Downloads the metaworld 3.0.0 wheel (36.7 MB; `pip download`, checked against its SHA-256),
# takes the 85 files the tasks load from its metaworld/assets/, turns them back into Meta-World
# commit 04be337a (the version AVDC evaluated with: scripts/metaworld-04be337a.patch restores five
# files, the XML under objects/assets/ and scene/ get back their CRLF line ends), checks every file
# against scripts/metaworld-04be337a.sha256, and only then moves them into DIR/assets_v2 and prints
# the --assets path. Meta-World is MIT-licensed; its LICENSE goes to DIR/LICENSE.
#
#   DIR      where to put assets_v2/ (default: ${XDG_CACHE_HOME:-~/.cache}/sp/metaworld)
#   --check ASSETS_V2_DIR   only check an existing copy against the manifest (no download)
#
# Environment: SP_METAWORLD_WHEEL=FILE uses an already downloaded wheel (still hash-checked).
# Needs python3 with pip (Debian: python3-pip) and patch. Exit 0 when every hash matches, 1 when
# something failed (the message says what), 2 on bad usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest=$here/metaworld-04be337a.sha256
patchfile=$here/metaworld-04be337a.patch
wheel_name=metaworld-3.0.0-py3-none-any.whl
wheel_sha256=f1dd9f8a1bcceab34a5f3c20113724dd90d21984ae89df98c21c842eb3ece137

say() { echo "get-metaworld-assets: $*" >&2; }
die() { say "$*"; exit 1; }

# check_dir DIR: compare every manifest entry with DIR; prints one line per bad file, then a summary
check_dir() {
  local dir=$1 ok=0 bad=0 h p got
  while read -r h p; do
    case $h in ''|'#'*) continue ;; esac
    if [ ! -f "$dir/$p" ]; then
      echo "missing   $p"; bad=$((bad + 1)); continue
    fi
    got=$(sha256sum "$dir/$p" | cut -d' ' -f1)
    if [ "$got" = "$h" ]; then ok=$((ok + 1)); else echo "differs   $p"; bad=$((bad + 1)); fi
  done < "$manifest"
  echo "$ok of $((ok + bad)) files match Meta-World 04be337a ($manifest)"
  [ "$bad" -eq 0 ]
}

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  [ $# -eq 2 ] || { say "usage: $0 --check ASSETS_V2_DIR"; exit 2; }
  [ -d "$2" ] || die "$2: no such directory"
  check_dir "$2" && exit 0 || exit 1
fi
[ $# -le 1 ] || { say "usage: $0 [DIR]   (or --check ASSETS_V2_DIR)"; exit 2; }

dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/sp/metaworld}
mkdir -p "$dest" || die "$dest: cannot create"
dest=$(cd "$dest" && pwd)
final=$dest/assets_v2
if [ -e "$final" ]; then
  if check_dir "$final" > /dev/null; then
    say "$final already holds the 85 files of Meta-World 04be337a"
    echo "--assets $final"
    exit 0
  fi
  summary=$(check_dir "$final" | tail -n 1 || true)
  die "$final exists and does not match the manifest ($summary; details: $0 --check $final); remove it or choose another DIR"
fi

for tool in python3 patch sha256sum sed; do
  command -v "$tool" > /dev/null || die "needs '$tool' (Debian: apt-get install python3-pip patch)"
done

work=$(mktemp -d "$dest/.get-assets.XXXXXX")
trap 'rm -rf "$work"' EXIT

# the wheel: given, or from PyPI
if [ -n "${SP_METAWORLD_WHEEL:-}" ]; then
  wheel=$SP_METAWORLD_WHEEL
  [ -f "$wheel" ] || die "SP_METAWORLD_WHEEL=$wheel: no such file"
else
  python3 -m pip --version > /dev/null 2>&1 || die "needs pip for python3 (Debian: apt-get install python3-pip)"
  say "downloading $wheel_name from PyPI (36.7 MB)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" metaworld==3.0.0 \
    || die "pip download metaworld==3.0.0 failed (no network, or PyPI unreachable?)"
  wheel=$work/$wheel_name
  [ -f "$wheel" ] || die "pip did not leave $wheel_name in $work"
fi
got=$(sha256sum "$wheel" | cut -d' ' -f1)
[ "$got" = "$wheel_sha256" ] || die "$wheel: SHA-256 $got, expected $wheel_sha256 (not the PyPI 3.0.0 wheel)"

# the manifest's files out of metaworld/assets/, and the license
stage=$work/assets_v2
python3 - "$wheel" "$stage" "$manifest" "$work/LICENSE" <<'EOF' || die "cannot unpack $wheel"
import os, sys, zipfile
wheel, stage, manifest, license_out = sys.argv[1:]
paths = [line.split(None, 1)[1].strip() for line in open(manifest)
         if line.strip() and not line.startswith("#")]
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    missing = [p for p in paths if "metaworld/assets/" + p not in names]
    if missing:
        sys.exit("the wheel lacks: " + ", ".join(missing))
    for p in paths:
        out = os.path.join(stage, p)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(z.read("metaworld/assets/" + p))
    with open(license_out, "wb") as f:
        f.write(z.read("metaworld-3.0.0.dist-info/licenses/LICENSE"))
EOF

# back to 04be337a: five files patched, then CRLF line ends where that commit has them
patch --quiet --batch --forward --no-backup-if-mismatch -d "$stage" -p1 < "$patchfile" \
  || die "$patchfile does not apply to the wheel's files"
for f in "$stage"/objects/assets/*.xml "$stage"/scene/*.xml; do
  sed -i 's/\r*$/\r/' "$f"
done

if ! check_dir "$stage" >&2; then
  die "the restored files do not match the manifest; nothing was written to $dest"
fi
mv "$stage" "$final"
mv "$work/LICENSE" "$dest/LICENSE"
say "Meta-World's scenes (MIT License, see $dest/LICENSE) are in $final"
echo "--assets $final"
say "use: sp eval ... --assets $final   (or: export SP_METAWORLD_ASSETS=$final)"
