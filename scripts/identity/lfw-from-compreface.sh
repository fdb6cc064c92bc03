#!/usr/bin/env bash
# Extracts LFW (Labeled Faces in the Wild: 13,233 photos of 5,749 people;
# research use) from a snapshot of exadel-inc/CompreFace, where it sits in the
# git history at commit d59f1e301e616419d4a9cd8b285385f14a87fb06 under
# test_comp_models/lfw/, into OUT/<identity>/<identity>_NNNN.jpg, leaving
# out the identities reserved for independent measurement
# (../shared/research/reserved.md). Nothing of it is committed: the
# identity evaluation reads OUT (`candor identity-eval --lfw OUT`).
#
# Usage: scripts/identity/lfw-from-compreface.sh SNAPSHOT_GIT_DIR OUT
set -euo pipefail
SNAP="${1:?snapshot git dir (a snapshot of github:exadel-inc/CompreFace)}"
OUT="${2:?output folder}"
COMMIT=d59f1e301e616419d4a9cd8b285385f14a87fb06
RESERVED=(Aaron_Sorkin Andy_Wisecarver Bison_Dele Charles_Chandler_IV Daniell_Sunjata Dule_Hill
    Francisco_Maturana Hal_Gehman James_Baker Jim_Haslett Joshua_Harapko Laila_Ali
    Manuel_Llorente Michael_Bolton Natalie_Imbruglia Pedro_Velasquez Richard_Jefferson
    Sam_Torrance Steven_Van_Zandt Tony_Cummo)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
git --git-dir "$SNAP" archive "$COMMIT" test_comp_models/lfw | tar -x -C "$TMP"
mkdir -p "$OUT"
cp -r "$TMP/test_comp_models/lfw/." "$OUT/"
for r in "${RESERVED[@]}"; do rm -rf "${OUT:?}/$r"; done
echo "LFW: $(find "$OUT" -mindepth 1 -maxdepth 1 -type d | wc -l) identities, $(find "$OUT" -name '*.jpg' | wc -l) photos in $OUT (exadel-inc/CompreFace@$COMMIT test_comp_models/lfw, reserved identities left out)"
