#!/bin/sh
# meson install script: install the example configuration as CONFIGDIR/mxbait.conf
# unless one is there (an admin's configuration is never overwritten).
#   install-config.sh SOURCE CONFIGDIR
set -eu
src=$1
dir=${DESTDIR:-}$2
mkdir -p "$dir"
if [ -e "$dir/mxbait.conf" ]; then
	echo "mxbait: $dir/mxbait.conf exists: left as it is (the example: $src)"
else
	install -m 0644 "$src" "$dir/mxbait.conf"
	echo "mxbait: installed $dir/mxbait.conf"
fi
