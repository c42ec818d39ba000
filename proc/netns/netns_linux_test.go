package netns_test

import (
	"errors"
	"net"
	"os"
	"testing"

	"github.com/rstwatch/rstwatch/proc/netns"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
)

func TestIntegrationDoEntersNamespace(t *testing.T) {
	ns := netnstest.New(t)
	// A fresh namespace has only lo: listing interfaces inside it must not
	// show the host's.
	var names []string
	ns.Do(t, func() error {
		ifs, err := net.Interfaces()
		for _, ifi := range ifs {
			names = append(names, ifi.Name)
		}
		return err
	})
	if len(names) != 1 || names[0] != "lo" {
		t.Fatalf("interfaces inside namespace = %v, want [lo]", names)
	}
	host, err := netns.Inode("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("failed to stat own namespace: %v", err)
	}
	in, err := netns.Inode(ns.Path)
	if err != nil {
		t.Fatalf("failed to stat test namespace: %v", err)
	}
	if host == in {
		t.Fatalf("test namespace has the host's inode %d", host)
	}
}

func TestDoRejectsNonNamespace(t *testing.T) {
	err := netns.Do("/proc/self/ns/uts", func() error { return nil })
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("skipping, permission denied (need CAP_SYS_ADMIN): %v", err)
	}
	if !errors.Is(err, netns.ErrNotNamespace) {
		t.Fatalf("Do(uts namespace) = %v, want ErrNotNamespace", err)
	}
	if err := netns.Do("/nonexistent/ns", func() error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Do(missing path) = %v, want ErrNotExist", err)
	}
}
