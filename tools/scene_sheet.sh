#!/bin/sh
# scene_sheet.sh: the picture of docs/scenes.md. Renders the 11 tasks at their seed-0 reset
# state from the cameras corner, corner2 and corner3, once on the built-in scenes and once on
# the Meta-World scenes, and puts each pair side by side: docs/img/scenes-<camera>.png.
#
#   make build/sp && sh tools/scene_sheet.sh [ASSETS_DIR]
#
# ASSETS_DIR is Meta-World's assets_v2 (default $SP_METAWORLD_ASSETS, else
# ../shared/metaworld/assets_v2); without it only the built-in column is drawn.
# Needs ImageMagick's montage (Debian: apt-get install imagemagick). Environment: SP (the sp
# binary, default build/sp), OUT (default docs/img), SEED (default 0), W and H (tile size,
# default 200 x 150), CAMERAS (default "corner corner2 corner3").
set -eu
SP=${SP:-build/sp}
OUT=${OUT:-docs/img}
SEED=${SEED:-0}
W=${W:-200}
H=${H:-150}
ASSETS=${1:-${SP_METAWORLD_ASSETS:-../shared/metaworld/assets_v2}}
TASKS="door-open door-close basketball shelf-place button-press button-press-topdown
faucet-close faucet-open handle-press hammer assembly"

command -v montage >/dev/null 2>&1 || {
  echo "scene_sheet: needs ImageMagick's montage (apt-get install imagemagick)" >&2; exit 1; }
[ -x "$SP" ] || { echo "scene_sheet: $SP not found; run make first" >&2; exit 1; }
if [ -f "$ASSETS/sawyer_xyz/sawyer_door_pull.xml" ]; then
  SOURCES="builtin metaworld"; PER_ROW=8
else
  echo "scene_sheet: no Meta-World assets at $ASSETS; drawing the built-in scenes only" >&2
  SOURCES="builtin"; PER_ROW=6
fi

# a font ImageMagick can find (Debian's fonts-dejavu-core is usually there)
FONT=${FONT:-DejaVu-Sans}
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$OUT"
for cam in ${CAMERAS:-corner corner2 corner3}; do
  set --
  for t in $TASKS; do
    for src in $SOURCES; do
      f="$tmp/$cam-$t-$src.png"
      if [ "$src" = builtin ]; then
        "$SP" render --task "$t" --camera "$cam" --seed "$SEED" --width "$W" --height "$H" \
          --scenes builtin --out "$f" >/dev/null
      else
        "$SP" render --task "$t" --camera "$cam" --seed "$SEED" --width "$W" --height "$H" \
          --scenes metaworld --assets "$ASSETS" --out "$f" >/dev/null
      fi
      [ -s "$f" ] || { echo "scene_sheet: $SP render wrote no $f ($t, $cam, $src)" >&2; exit 1; }
      set -- "$@" -label "$t ($src)" "$f"
    done
  done
  montage "$@" -tile "${PER_ROW}x" -geometry "${W}x${H}+2+2" -font "$FONT" -pointsize 11 \
    -background white "$OUT/scenes-$cam.png"
  echo "scene_sheet: wrote $OUT/scenes-$cam.png"
done
