#!/bin/sh
# Entry of a test swarm worker. Docker-in-docker without --privileged (a host whose capability
# bounding set lacks one capability refuses --privileged outright): the container gets every
# capability it can have, and dockerd gets writable cgroup v1 hierarchies rooted at this
# container's own cgroup, so everything it starts lives (and dies) inside this container's.
set -eu
if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /run/cgroup-roots
    while IFS=: read -r _ controllers path; do
        [ -n "$controllers" ] || continue
        dir=${controllers#name=}
        [ -d "/sys/fs/cgroup/$dir" ] || continue
        umount "/sys/fs/cgroup/$dir" 2>/dev/null || true
        mkdir -p "/run/cgroup-roots/$dir"
        mount -t cgroup -o "$controllers" cgroup "/run/cgroup-roots/$dir"
        mount --bind "/run/cgroup-roots/$dir$path" "/sys/fs/cgroup/$dir"
    done < /proc/self/cgroup
else
    # cgroup v2 (a private cgroup namespace): writable, this shell moved out of the root so
    # the controllers can be delegated to dockerd's children.
    mount -o remount,rw /sys/fs/cgroup
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
    sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control
fi
exec dockerd "$@"
