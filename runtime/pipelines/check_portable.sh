#!/usr/bin/env bash
# Runs the finite portable pipeline templates (portable.txt) with GStreamer here: encode a test
# mp4, decode it back to RGB. Exit 0 when both succeed. Does not need a camera or a display.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gst-launch-1.0 -q -e videotestsrc num-buffers=60 ! 'video/x-raw,format=RGB,width=320,height=240,framerate=30/1' \
  ! videoconvert ! 'video/x-raw,format=I420' ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
  ! h264parse ! mp4mux ! filesink location="$tmp/out.mp4"
gst-launch-1.0 -q filesrc location="$tmp/out.mp4" ! decodebin ! videoconvert ! 'video/x-raw,format=RGB' \
  ! fakesink sync=false
echo "portable templates OK ($(stat -c %s "$tmp/out.mp4") bytes mp4)"
