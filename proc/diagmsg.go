package proc

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
)

// Netlink and sock_diag wire layout (netlink(7), sock_diag(7),
// include/uapi/linux/inet_diag.h). Kept OS-neutral so the encoder and the
// decoder are tested and fuzzed on any GOOS.
//
// Byte order: netlink headers, attribute headers and every inet_diag field
// are in host (native) order, except the ports and addresses of
// inet_diag_sockid, which are in network order.
const (
	sizeofNlMsghdr       = 16                            // struct nlmsghdr
	sizeofInetDiagSockID = 48                            // struct inet_diag_sockid
	sizeofInetDiagReqV2  = 8 + sizeofInetDiagSockID      // struct inet_diag_req_v2
	sizeofInetDiagMsg    = 4 + sizeofInetDiagSockID + 20 // struct inet_diag_msg
	sizeofRtAttr         = 4                             // struct rtattr / nlattr header

	nlmsgNoop  = 0x1 // NLMSG_NOOP
	nlmsgError = 0x2 // NLMSG_ERROR
	nlmsgDone  = 0x3 // NLMSG_DONE

	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY

	nlmFRequest  = 0x1   // NLM_F_REQUEST
	nlmFDumpIntr = 0x10  // NLM_F_DUMP_INTR: the dump changed under the kernel's feet
	nlmFDump     = 0x300 // NLM_F_ROOT|NLM_F_MATCH

	ipprotoTCP = 6

	inetDiagNoCookie = ^uint32(0) // INET_DIAG_NOCOOKIE, both cookie words

	// Attribute types (enum in inet_diag.h) this package reads; others are skipped.
	inetDiagSKV6Only = 11 // INET_DIAG_SKV6ONLY, u8, AF_INET6 sockets only
	inetDiagCgroupID = 21 // INET_DIAG_CGROUP_ID, u64 (Linux 5.9+)

	nlaTypeMask = 0x3fff // strip NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// Offsets in struct inet_diag_msg.
const (
	offMsgFamily = 0  // u8
	offMsgState  = 1  // u8
	offMsgID     = 4  // struct inet_diag_sockid
	offIDSport   = 0  // __be16, network order
	offIDDport   = 2  // __be16, network order
	offIDSrc     = 4  // __be32[4], network order
	offIDDst     = 20 // __be32[4], network order
	offIDIf      = 36 // u32, native
	offIDCookie  = 40 // u32[2], native, low word first
	offMsgRqueue = 56 // u32, native
	offMsgWqueue = 60 // u32, native
	offMsgUID    = 64 // u32, native
	offMsgInode  = 68 // u32, native
	offReqFamily = 0  // u8 sdiag_family
	offReqProto  = 1  // u8 sdiag_protocol
	offReqExt    = 2  // u8 idiag_ext
	offReqStates = 4  // u32, native
	offReqID     = 8  // struct inet_diag_sockid
	nlmsgAlignTo = 4
	rtaAlignTo   = 4
)

func align(n, to int) int { return (n + to - 1) &^ (to - 1) }

// diagRequest describes one SOCK_DIAG_BY_FAMILY request.
type diagRequest struct {
	seq    uint32
	dump   bool // NLM_F_DUMP; otherwise an exact lookup of local/remote
	family uint8
	states StateMask
	local  netip.AddrPort // exact lookup only
	remote netip.AddrPort
}

// marshal appends the request (nlmsghdr + inet_diag_req_v2) to b.
func (r *diagRequest) marshal(b []byte) []byte {
	n := len(b)
	b = append(b, make([]byte, sizeofNlMsghdr+sizeofInetDiagReqV2)...)
	h := b[n:]
	ne := binary.NativeEndian
	ne.PutUint32(h[0:], uint32(sizeofNlMsghdr+sizeofInetDiagReqV2)) // nlmsg_len
	ne.PutUint16(h[4:], sockDiagByFamily)                           // nlmsg_type
	flags := uint16(nlmFRequest)
	if r.dump {
		flags |= nlmFDump
	}
	ne.PutUint16(h[6:], flags) // nlmsg_flags
	ne.PutUint32(h[8:], r.seq) // nlmsg_seq
	ne.PutUint32(h[12:], 0)    // nlmsg_pid: the kernel
	q := h[sizeofNlMsghdr:]
	q[offReqFamily] = r.family
	q[offReqProto] = ipprotoTCP
	q[offReqExt] = 0 // no optional attributes: tcp_info etc. are not needed
	ne.PutUint32(q[offReqStates:], uint32(r.states))
	id := q[offReqID:]
	if !r.dump {
		binary.BigEndian.PutUint16(id[offIDSport:], r.local.Port())
		binary.BigEndian.PutUint16(id[offIDDport:], r.remote.Port())
		putAddr(id[offIDSrc:offIDSrc+16], r.local.Addr())
		putAddr(id[offIDDst:offIDDst+16], r.remote.Addr())
		ne.PutUint32(id[offIDCookie:], inetDiagNoCookie)
		ne.PutUint32(id[offIDCookie+4:], inetDiagNoCookie)
	}
	return b
}

// putAddr writes a in network order: 4 bytes for IPv4, 16 for IPv6.
func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	v := a.As16()
	copy(b, v[:])
}

// diagStatus tells the reader of a dump what the decoded buffer ended with.
type diagStatus struct {
	done bool // NLMSG_DONE, an NLMSG_ERROR ack, or the answer to an exact lookup
	intr bool // some message carried NLM_F_DUMP_INTR
}

// decodeDiag decodes one buffer of netlink messages (what one recvfrom(2)
// returned) and appends the sockets of its SOCK_DIAG_BY_FAMILY messages to
// dst. Messages whose nlmsg_seq is not seq are stale and skipped (seq 0
// accepts any). NLMSG_ERROR with a non-zero code and NLMSG_DONE carrying a
// negative code become a syscall.Errno; malformed bytes wrap ErrParse.
// Unknown message and attribute types are skipped. It is a pure function of
// its input.
func decodeDiag(b []byte, seq uint32, dst []Socket) ([]Socket, diagStatus, error) {
	var st diagStatus
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < sizeofNlMsghdr {
			return dst, st, fmt.Errorf("%w: netlink: %d trailing bytes, shorter than a header", ErrParse, len(b))
		}
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		flags := ne.Uint16(b[6:])
		mseq := ne.Uint32(b[8:])
		if l < sizeofNlMsghdr || l > len(b) {
			return dst, st, fmt.Errorf("%w: netlink: message length %d, %d bytes left", ErrParse, l, len(b))
		}
		m := b[sizeofNlMsghdr:l:l]
		if next := align(l, nlmsgAlignTo); next < len(b) {
			b = b[next:]
		} else {
			b = nil
		}
		if seq != 0 && mseq != seq {
			continue
		}
		if flags&nlmFDumpIntr != 0 {
			st.intr = true
		}
		switch typ {
		case nlmsgNoop:
		case nlmsgDone:
			// Dumps put an int error in NLMSG_DONE (netlink(7)); 0 means success.
			st.done = true
			if len(m) >= 4 {
				if code := int32(ne.Uint32(m)); code < 0 {
					return dst, st, syscall.Errno(-code)
				}
			}
			return dst, st, nil
		case nlmsgError:
			// struct nlmsgerr: int error, then the offending request's header.
			st.done = true
			if len(m) < 4 {
				return dst, st, fmt.Errorf("%w: netlink: NLMSG_ERROR of %d bytes", ErrParse, len(m))
			}
			if code := int32(ne.Uint32(m)); code != 0 {
				return dst, st, syscall.Errno(-code)
			}
			return dst, st, nil
		case sockDiagByFamily:
			s, err := decodeInetDiagMsg(m)
			if err != nil {
				return dst, st, err
			}
			dst = append(dst, s)
		}
	}
	return dst, st, nil
}

// decodeInetDiagMsg decodes a struct inet_diag_msg and its attributes.
func decodeInetDiagMsg(m []byte) (Socket, error) {
	if len(m) < sizeofInetDiagMsg {
		return Socket{}, fmt.Errorf("%w: inet_diag_msg of %d bytes, want %d", ErrParse, len(m), sizeofInetDiagMsg)
	}
	ne := binary.NativeEndian
	id := m[offMsgID : offMsgID+sizeofInetDiagSockID]
	var s Socket
	sport, dport := binary.BigEndian.Uint16(id[offIDSport:]), binary.BigEndian.Uint16(id[offIDDport:])
	switch fam := m[offMsgFamily]; fam {
	case afInet:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[offIDSrc:offIDSrc+4])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[offIDDst:offIDDst+4])), dport)
	case afInet6:
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[offIDSrc:offIDSrc+16])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[offIDDst:offIDDst+16])), dport)
	default:
		return Socket{}, fmt.Errorf("%w: inet_diag_msg of address family %d", ErrParse, fam)
	}
	s.State = State(m[offMsgState])
	s.IfIndex = ne.Uint32(id[offIDIf:])
	s.Cookie = uint64(ne.Uint32(id[offIDCookie:])) | uint64(ne.Uint32(id[offIDCookie+4:]))<<32
	s.RecvQ = ne.Uint32(m[offMsgRqueue:])
	s.SendQ = ne.Uint32(m[offMsgWqueue:])
	s.UID = ne.Uint32(m[offMsgUID:])
	s.Inode = uint64(ne.Uint32(m[offMsgInode:]))
	for a := m[sizeofInetDiagMsg:]; len(a) > 0; {
		if len(a) < sizeofRtAttr {
			return Socket{}, fmt.Errorf("%w: inet_diag_msg: %d trailing attribute bytes", ErrParse, len(a))
		}
		l := int(ne.Uint16(a[0:]))
		typ := ne.Uint16(a[2:]) & nlaTypeMask
		if l < sizeofRtAttr || l > len(a) {
			return Socket{}, fmt.Errorf("%w: inet_diag_msg: attribute %d of length %d, %d bytes left", ErrParse, typ, l, len(a))
		}
		v := a[sizeofRtAttr:l]
		switch typ {
		case inetDiagSKV6Only:
			if len(v) >= 1 {
				s.V6Only = v[0] != 0
			}
		case inetDiagCgroupID:
			if len(v) >= 8 {
				s.CgroupID = ne.Uint64(v)
			}
		}
		if next := align(l, rtaAlignTo); next < len(a) {
			a = a[next:]
		} else {
			a = nil
		}
	}
	return s, nil
}
