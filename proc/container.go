package proc

import "strings"

// containerPrefixes are the scope/slice name prefixes container runtimes put
// before the container ID in cgroup paths (systemd cgroup driver).
var containerPrefixes = []string{
	"docker-",         // /system.slice/docker-ID.scope
	"cri-containerd-", // kubepods...-podUID.slice/cri-containerd-ID.scope
	"crio-",           // kubepods...-podUID.slice/crio-ID.scope (crio-conmon-ID is the monitor, not the container)
	"libpod-",         // podman: /machine.slice/libpod-ID.scope (libpod-conmon-ID likewise)
	"containerd-",     // containerd without CRI
}

// ContainerID returns the container ID (64 lowercase hex digits) found in a
// cgroup path such as Process.Cgroup, or "" if the path names no container.
// It understands the systemd driver's "docker-ID.scope",
// "cri-containerd-ID.scope", "crio-ID.scope" and "libpod-ID.scope" units and
// the cgroupfs driver's "/docker/ID" and "/kubepods/CLASS/podUID/ID"
// directories. The innermost (last) matching path element wins, so a
// process nested inside a container's own cgroup tree still resolves.
func ContainerID(cgroup string) string {
	for cgroup != "" {
		var elem string
		if i := strings.LastIndexByte(cgroup, '/'); i >= 0 {
			elem, cgroup = cgroup[i+1:], cgroup[:i]
		} else {
			elem, cgroup = cgroup, ""
		}
		elem = strings.TrimSuffix(elem, ".scope")
		if isContainerID(elem) {
			return elem
		}
		for _, p := range containerPrefixes {
			if id, ok := strings.CutPrefix(elem, p); ok && isContainerID(id) {
				return id
			}
		}
	}
	return ""
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
