package proc

import (
	"strings"
	"testing"
)

func TestContainerID(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	tests := []struct{ name, cgroup, want string }{
		{"docker_systemd", "/system.slice/docker-" + id + ".scope", id},
		{"docker_cgroupfs", "/docker/" + id, id},
		{"k8s_containerd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-" + id + ".scope", id},
		{"k8s_crio", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice/crio-" + id + ".scope", id},
		{"crio_conmon", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice/crio-conmon-" + id + ".scope", ""},
		{"k8s_cgroupfs", "/kubepods/besteffort/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/" + id, id},
		{"podman", "/machine.slice/libpod-" + id + ".scope/container", id},
		{"podman_user", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", id},
		{"nested_in_container", "/docker/" + strings.Repeat("f", 64) + "/system.slice/docker-" + id + ".scope", id},
		{"host_service", "/system.slice/sshd.service", ""},
		{"root", "/", ""},
		{"empty", "", ""},
		{"short_hex", "/docker/0123456789ab", ""},
		{"upper_hex", "/docker/" + strings.ToUpper(id), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContainerID(tt.cgroup); got != tt.want {
				t.Fatalf("ContainerID(%q) = %q, want %q", tt.cgroup, got, tt.want)
			}
		})
	}
}

func TestCgroupPath(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"v2", "0::/system.slice/sshd.service\n", "/system.slice/sshd.service"},
		{"hybrid_v2_root", "4:memory:/process_api/91\n3:cpuset:/\n0::/\n", "/process_api/91"},
		{"hybrid_v2_path", "4:memory:/a\n0::/b\n", "/b"},
		{"v1_only", "12:pids:/docker/x\n1:name=systemd:/docker/x\n", "/docker/x"},
		{"v2_root_only", "0::/\n", "/"},
		{"garbage", "nonsense\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cgroupPath([]byte(tt.in)); got != tt.want {
				t.Fatalf("cgroupPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
