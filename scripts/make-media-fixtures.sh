#!/usr/bin/env bash
# Regenerates the small media fixtures in samples/media/ used by the
# candor-media tests. Deterministic (fixed seeds/flags, bit-exact outputs are
# not guaranteed across ffmpeg versions). CI does NOT run this: the outputs are
# committed. Needs Debian packages: ffmpeg espeak-ng qpdf.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=samples/media
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

FF=(ffmpeg -hide_banner -loglevel error -y -nostdin)
BITEXACT=(-fflags +bitexact -flags:a +bitexact -flags:v +bitexact -map_metadata -1)

# 2 s of synthetic speech at 22.05 kHz mono (espeak-ng is deterministic).
espeak-ng -v en-us -s 150 -w "$TMP/speech.wav" \
  "Hello, my name is Candor. This is a short interview answer."
"${FF[@]}" -i "$TMP/speech.wav" -t 2.0 -ar 44100 -ac 2 "$TMP/speech44k.wav"

"${FF[@]}" -i "$TMP/speech44k.wav" "${BITEXACT[@]}" -c:a flac "$OUT/speech.flac"
"${FF[@]}" -i "$TMP/speech44k.wav" "${BITEXACT[@]}" -c:a libmp3lame -b:a 64k "$OUT/speech.mp3"
"${FF[@]}" -i "$TMP/speech44k.wav" "${BITEXACT[@]}" -c:a aac -b:a 64k "$OUT/speech.m4a"
"${FF[@]}" -i "$TMP/speech44k.wav" "${BITEXACT[@]}" -c:a libvorbis -q:a 2 "$OUT/speech_vorbis.ogg"
"${FF[@]}" -i "$TMP/speech44k.wav" "${BITEXACT[@]}" -c:a libopus -b:a 32k "$OUT/speech_opus.ogg"
"${FF[@]}" -i "$TMP/speech44k.wav" "${BITEXACT[@]}" -c:a libopus -b:a 32k "$OUT/speech_opus.webm"
# Streamed WebM, as a browser MediaRecorder writes it: muxed to a pipe, so the
# Segment has unknown size and there are no cues.
"${FF[@]}" -i "$TMP/speech44k.wav" "${BITEXACT[@]}" -c:a libopus -b:a 32k -f webm - > "$OUT/speech_streamed.webm"
# MP4 with tiny H.264 video + AAC-LC audio (audio is the second track).
"${FF[@]}" -f lavfi -i "testsrc=size=64x48:rate=10:duration=2" -i "$TMP/speech44k.wav" \
  "${BITEXACT[@]}" -map 0:v -map 1:a -c:v libx264 -preset ultrafast -crf 40 -pix_fmt yuv420p \
  -c:a aac -b:a 48k -shortest "$OUT/interview.mp4"
# HE-AAC (SBR) is not supported by Symphonia: expected rejection. Debian's
# ffmpeg has no SBR encoder, so take the AAC-LC m4a and rewrite its
# AudioSpecificConfig to the explicit HE-AAC signalling (object type 5, core
# 22.05 kHz, extension 44.1 kHz, then object type 2). Decoders that honour the
# header see HE-AAC; Symphonia must refuse it.
python3 - "$OUT/speech.m4a" "$OUT/speech_he_aac.m4a" <<'PY'
import sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
# DecoderSpecificInfo as ffmpeg writes it: AAC-LC, 44.1 kHz, stereo, plus the
# backward-compatible SBR sync extension saying "no SBR" (5 bytes). Replace it
# with an equally long explicit HE-AAC config (zero padded).
old = bytes.fromhex("0580808005" "121056e500")
new = bytes.fromhex("0580808005" "2b92080000")
assert data.count(old) == 1, "unexpected AAC config in speech.m4a"
open(dst, "wb").write(data.replace(old, new))
PY

# Documents. A tiny text PDF is written by hand (deterministic), then
# encrypted with qpdf (static ids/IVs for reproducibility).
python3 - "$OUT" <<'PY'
import sys
out = sys.argv[1]
def pdf(objs, path):
    body = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        body += b"%010d 00000 n \n" % off
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    open(path, "wb").write(body)

text = (b"BT /F1 12 Tf 72 720 Td (Jane Doe - Software Engineer) Tj ET\n"
        b"BT /F1 12 Tf 72 690 Td (Built Rust services for ten years.) Tj ET\n")
pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    b"<< /Length %d >>\nstream\n" % len(text) + text + b"endstream",
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
], out + "/resume.pdf")

# Image-only: one page that only paints a 2x2 grey image.
img = b"q 200 0 0 200 72 500 cm /Im1 Do Q\n"
pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /XObject << /Im1 5 0 R >> >> >>",
    b"<< /Length %d >>\nstream\n" % len(img) + img + b"endstream",
    b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length 4 >>\nstream\n\x80\x40\x40\x80\nendstream",
], out + "/scanned.pdf")
PY
qpdf --static-id --static-aes-iv --encrypt secret-user secret-owner 256 -- \
  "$OUT/resume.pdf" "$OUT/resume_encrypted.pdf"

ls -l "$OUT"
