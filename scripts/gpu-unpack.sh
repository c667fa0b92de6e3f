# Sourced on the GPU machine after .gpu/setup.sh: unpacks .gpu/src.tar (scripts/gpu-snapshot.sh)
# into /tmp/src with this checkout's node_modules, and cds there.
_root=$PWD
rm -rf /tmp/src && mkdir -p /tmp/src && tar -xf "$_root/.gpu/src.tar" -C /tmp/src
ln -s "$_root/node_modules" /tmp/src/node_modules
ln -s "$_root/test/fixtures" /tmp/src/test/fixtures
cd /tmp/src
