# Sourced on the GPU machine after .gpu/setup.sh: unpacks .gpu/src.tar (scripts/gpu-snapshot.sh)
# into /tmp/src with this checkout's node_modules and fixtures, and cds there. The build folder
# of an earlier unpack on the same (warm) machine is kept, so a second call rebuilds only what
# changed (the parity harness and the addon alike).
_root=$PWD
[ -d /tmp/src/build ] && rm -rf /tmp/src-build && mv /tmp/src/build /tmp/src-build
rm -rf /tmp/src && mkdir -p /tmp/src && tar -xf "$_root/.gpu/src.tar" -C /tmp/src
[ -d /tmp/src-build ] && mv /tmp/src-build /tmp/src/build
ln -s "$_root/node_modules" /tmp/src/node_modules
ln -s "$_root/test/fixtures" /tmp/src/test/fixtures
cd /tmp/src
