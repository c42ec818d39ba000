package savefile_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/sniff/savefile"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// corpusRSTs parses the README table of the corpus: file -> RSTs, IPv6 RSTs.
func corpusRSTs(tb testing.TB, dir string) map[string][2]int {
	tb.Helper()
	f, err := os.Open(filepath.Join(dir, "README.md"))
	if err != nil {
		if snifftest.CorpusRequired() {
			tb.Fatalf("no corpus README, cannot check RST counts: %v", err)
		}
		tb.Logf("no corpus README, not checking RST counts: %v", err)
		return nil
	}
	defer f.Close()
	want := map[string][2]int{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		cols := strings.Split(s.Text(), "|")
		if len(cols) < 7 {
			continue
		}
		rsts, err1 := strconv.Atoi(strings.TrimSpace(cols[4]))
		rsts6, err2 := strconv.Atoi(strings.TrimSpace(cols[5]))
		if err1 != nil || err2 != nil {
			continue
		}
		want[strings.TrimSpace(cols[1])] = [2]int{rsts, rsts6}
	}
	return want
}

// tcpRST reports whether ip is a TCP segment with RST set, and whether it is
// IPv6. It is deliberately independent of the rstwatch decoders.
func tcpRST(ip []byte) (rst, v6 bool) {
	var proto byte
	var tcp []byte
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 {
			return false, false
		}
		ihl := int(ip[0]&0x0f) * 4
		if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 || len(ip) < ihl {
			return false, false // a later fragment
		}
		proto, tcp = ip[9], ip[ihl:]
	case 6:
		v6 = true
		if len(ip) < 40 {
			return false, true
		}
		proto, tcp = ip[6], ip[40:]
		// Hop-by-hop, routing and destination options headers.
		for (proto == 0 || proto == 43 || proto == 60) && len(tcp) >= 8 {
			n := 8 + int(tcp[1])*8
			if len(tcp) < n {
				return false, true
			}
			proto, tcp = tcp[0], tcp[n:]
		}
	}
	return proto == 6 && len(tcp) >= 14 && tcp[13]&0x04 != 0, v6
}

// TestCorpus reads every capture of the external corpus: every packet must
// have a link type Network supports, Network must find the IP packet of
// every IP frame, and the RST counts must match the corpus README.
func TestCorpus(t *testing.T) {
	dir := snifftest.CorpusDir(t)
	files := snifftest.CorpusFiles(t, dir)
	if len(files) == 0 {
		snifftest.SkipCorpus(t, "no capture files in %s", dir)
	}
	wantRSTs := corpusRSTs(t, dir)
	perLink := map[savefile.LinkType]int{}
	nonIP := map[string]int{}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("failed to open capture: %v", err)
			}
			defer f.Close()
			r, err := savefile.NewReader(f)
			if err != nil {
				t.Fatalf("failed to read capture header: %v", err)
			}
			var n, rsts, rsts6 int
			for {
				p, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("failed to read packet %d: %v", n, err)
				}
				n++
				perLink[p.LinkType]++
				ip, _, ok := savefile.Network(p.LinkType, p.Data)
				if !ok {
					if why := nonIPReason(p.LinkType, p.Data); why != "" {
						nonIP[why]++
						continue
					}
					t.Errorf("packet %d (%v, %d bytes): Network found no IP packet in %x", n, p.LinkType, len(p.Data), p.Data[:min(len(p.Data), 64)])
					continue
				}
				if rst, v6 := tcpRST(ip); rst {
					rsts++
					if v6 {
						rsts6++
					}
				}
			}
			if n == 0 {
				t.Errorf("read no packets")
			}
			if want, ok := wantRSTs[name]; ok && (rsts != want[0] || rsts6 != want[1]) {
				t.Errorf("got %d RSTs (%d IPv6), README says %d (%d IPv6)", rsts, rsts6, want[0], want[1])
			}
			t.Logf("%s: %v, %d packets, %d RSTs (%d IPv6)", r.Format(), linkTypes(r), n, rsts, rsts6)
		})
	}
	var lts []string
	for lt, n := range perLink {
		lts = append(lts, lt.String()+"("+strconv.Itoa(int(lt))+"): "+strconv.Itoa(n))
	}
	sort.Strings(lts)
	t.Logf("%d files; packets per link type: %s; frames without IP: %v", len(files), strings.Join(lts, ", "), nonIP)
}

func linkTypes(r *savefile.Reader) []savefile.LinkType {
	var lts []savefile.LinkType
	for i := range r.NumInterfaces() {
		ifc, _ := r.Interface(i)
		lts = append(lts, ifc.LinkType)
	}
	return lts
}

// nonIPReason says why a frame Network rejected carries no IP, or returns
// "" if it should have carried IP.
func nonIPReason(lt savefile.LinkType, b []byte) string {
	var et uint16
	switch lt {
	case savefile.LinkTypeEthernet:
		if len(b) < 14 {
			return ""
		}
		et, b = binary.BigEndian.Uint16(b[12:]), b[14:]
	case savefile.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return ""
		}
		et, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	default:
		return ""
	}
	for (et == 0x8100 || et == 0x88a8) && len(b) >= 4 {
		et, b = binary.BigEndian.Uint16(b[2:]), b[4:]
	}
	if et == savefile.EtherTypeIPv4 || et == savefile.EtherTypeIPv6 {
		return ""
	}
	return lt.String() + " ethertype 0x" + strconv.FormatUint(uint64(et), 16)
}
