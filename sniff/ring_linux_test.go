package sniff_test

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
)

// sendResets writes n crafted IPv4 RSTs to 127.0.0.1 in ns, each with its
// own sequence number so that none is a duplicate of another.
func sendResets(t testing.TB, ns *netnstest.NS, n int) {
	t.Helper()
	pkt := rawRST(0)
	sendRaw(t, ns, n, func(i int) []byte {
		binary.BigEndian.PutUint32(pkt[24:], uint32(i))
		return pkt
	})
}

// rawRST builds an IPv4 RST from 127.0.0.1:7211 to 127.0.0.1:9 carrying
// payload bytes of payload.
func rawRST(payload int) []byte {
	pkt := make([]byte, 20+20+payload)
	pkt[0], pkt[8], pkt[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	copy(pkt[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
	binary.BigEndian.PutUint16(pkt[20:], 7211)
	binary.BigEndian.PutUint16(pkt[22:], 9)
	pkt[32], pkt[33] = 5<<4, byte(sniff.FlagRST)
	return pkt
}

// sendRaw sends n IPv4 packets, pkt(0) to pkt(n-1), to 127.0.0.1 through a
// raw socket inside ns.
func sendRaw(t testing.TB, ns *netnstest.NS, n int, pkt func(i int) []byte) {
	t.Helper()
	ns.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for i := range n {
			if err := unix.Sendto(fd, pkt(i), 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestIntegrationRingDropsExact overflows a small ring while nobody reads
// it: every reset is then either read or counted as a kernel drop.
func TestIntegrationRingDropsExact(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(map[bool]string{false: "ring", true: "recvmmsg"}[noRing], func(t *testing.T) {
			ns := netnstest.New(t)
			s := openIn(t, ns, sniff.Config{ReadBuffer: 256 << 10, NoRing: noRing})
			const n = 20000
			sendResets(t, ns, n)
			got := collect(t, s, n, time.Second)
			st, err := s.Stats()
			if err != nil {
				t.Fatalf("failed to read stats: %v", err)
			}
			if st.Drops == 0 {
				t.Errorf("no drops: the buffer should have overflowed")
			}
			if uint64(len(got))+st.Drops != n || st.Packets != n {
				t.Errorf("read %d + dropped %d (of %d passed the filter), want %d in all", len(got), st.Drops, st.Packets, n)
			}
		})
	}
}

// TestIntegrationRingCloseWhileReading closes a Sniffer while Next is
// parked on an empty ring: Next must return a closed error, not fault on
// the unmapped ring.
func TestIntegrationRingCloseWhileReading(t *testing.T) {
	ns := netnstest.New(t)
	s := openIn(t, ns, sniff.Config{})
	done := make(chan error, 1)
	go func() {
		var e sniff.Event
		done <- s.Next(&e)
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("failed to close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked 5s after Close")
	}
	var e sniff.Event
	if err := s.Next(&e); err == nil {
		t.Fatal("Next after Close returned no error")
	}
}

// TestIntegrationRingCloseWhileFlowing closes a Sniffer from another
// goroutine while resets flow and the reader decodes them and reads every
// byte of each event: neither Next nor the event it returned may touch the
// unmapped ring. Each round sends a bounded burst inside the test's own
// namespace; CI also runs this test under -race (.ci/run).
func TestIntegrationRingCloseWhileFlowing(t *testing.T) {
	ns := netnstest.New(t)
	const rounds, burst = 40, 4000
	for round := range rounds {
		s := openIn(t, ns, sniff.Config{ReadBuffer: 1 << 20})
		if err := s.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		sendResets(t, ns, burst) // queued in the ring before the reader starts
		got := make(chan int, 1)
		done := make(chan error, 1)
		go func() {
			var e sniff.Event
			var sum byte
			for n := 0; ; n++ {
				if n == round*10 {
					got <- n
				}
				if err := s.Next(&e); err != nil {
					done <- err
					return
				}
				for _, b := range e.Data {
					sum += b
				}
				for _, b := range e.Payload {
					sum += b
				}
			}
		}()
		<-got
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: failed to close: %v", round, err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("round %d: Next returned %v after Close, want net.ErrClosed", round, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Next still running 5s after Close", round)
		}
	}
}

// BenchmarkNext measures Next on resets already queued in the kernel: the
// decode, dedup and (with the ring) the per-call hold and copy. Sending is
// outside the timer. Needs CAP_NET_RAW and CAP_SYS_ADMIN.
func BenchmarkNext(b *testing.B) {
	for _, noRing := range []bool{false, true} {
		b.Run(map[bool]string{false: "ring", true: "recvmmsg"}[noRing], func(b *testing.B) {
			ns := netnstest.New(b)
			s := openIn(b, ns, sniff.Config{ReadBuffer: 8 << 20, NoRing: noRing})
			const chunk = 5000
			var e sniff.Event
			b.ReportAllocs()
			for done := 0; done < b.N; done += chunk {
				b.StopTimer()
				n := min(chunk, b.N-done)
				sendResets(b, ns, n)
				// Let the ring retire its last, partly filled block
				// (ringRetire, 10 ms), so the timer does not count the wait.
				time.Sleep(20 * time.Millisecond)
				if err := s.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for i := range n {
					if err := s.Next(&e); err != nil {
						st, _ := s.Stats()
						b.Fatalf("failed to read reset %d of %d (after %d): %v; kernel: %+v, duplicates %d, undecodable %d",
							i, n, done, err, st, s.Duplicates(), s.Undecodable())
					}
				}
			}
		})
	}
}
