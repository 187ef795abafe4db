# Sourced by the benchmarks so that kube-api-auth runs as pods run it (uid/gid 1000, no
# capabilities): as root, `as_pod` is a setpriv prefix to that user and `hand_over DIR` gives DIR to
# it, as a pod's volumes are; as any other user the service runs as that user and both do nothing.
as_pod=()
hand_over() { :; }
if [ "$(id -u)" -eq 0 ]; then
    as_pod=(setpriv --reuid=1000 --regid=1000 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs --)
    hand_over() { chmod 755 "$1" && chown -R 1000:1000 "$1"; }
fi
