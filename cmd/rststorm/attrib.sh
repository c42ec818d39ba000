#!/usr/bin/env bash
# attrib.sh: what naming the processes behind resets costs and achieves
# (issue 5/7). Run as root from anywhere in the checkout:
#
#   sudo cmd/rststorm/attrib.sh          # every scenario below (~2.5 min)
#   sudo cmd/rststorm/attrib.sh table    # one of: table busy idle burst
#
# table: a server accepts a loopback connection, holds it 0 ms .. 1 s and
#        aborts it (SO_LINGER 0); the share of 20 runs in which the verdict
#        names the sender's and the target's pid (the Explainer as `watch`
#        runs it, in a test namespace: TestIntegrationShortLived).
# busy:  `rstwatch watch --json` on a namespace with 10,000 sockets held by
#        one process, 300 more processes, then 20 new connections a second
#        for 10 s: CPU seconds per wall second, idle (20 s) first, then busy.
# idle:  the same with 60,000 sockets and no new connections, over 20 s.
# burst: 72,000 listeners that all close at once (their process exits):
#        CPU seconds of the burst and rstwatch's peak RSS.
#
# Every socket lives in a namespace this script creates and deletes (also
# on Ctrl-C); the processes it starts are ended by pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

modes=${*:-table busy idle burst}
for m in $modes; do
	case $m in table | busy | idle | burst) ;; *) echo "usage: $0 [table] [busy] [idle] [burst]" >&2; exit 2 ;; esac
done
if [ "$(id -u)" != 0 ]; then echo "$0: run as root (it creates network namespaces)" >&2; exit 2; fi

tmp=$(mktemp -d)
ns="rstattr-$$"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# load.py: holds sockets or makes connections inside the namespace.
#   pairs N B      N connected loopback pairs (2N sockets), then waits
#   listeners N B  N listeners, then waits; SIGUSR1 closes them all at once
# (B tells processes apart: a process may hold at most `ulimit -Hn` files.)
#   churn R S      R connections a second for S seconds, each aborted
cat >"$tmp/load.py" <<'EOF'
import os, resource, signal, socket, struct, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
mode, n = sys.argv[1], int(sys.argv[2])
base = int(sys.argv[3]) if len(sys.argv) > 3 else 0  # spreads ports across processes
keep = []
if mode == "pairs":
    lns = []
    for port in (9001 + base, 9002 + base, 9003 + base):
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("127.0.0.1", port)); l.listen(4096); lns.append(l)
    for i in range(n):
        l = lns[i % len(lns)]
        c = socket.create_connection(l.getsockname()); s, _ = l.accept()
        keep += [c, s]
elif mode == "listeners":
    for i in range(n):
        l = socket.socket()
        l.bind(("127.0.0.%d" % (1 + base), 2000 + i)); l.listen(1)
        keep.append(l)
    signal.signal(signal.SIGUSR1, lambda *a: os._exit(0))
elif mode == "churn":
    secs = float(sys.argv[3])
    l = socket.socket(); l.bind(("127.0.0.1", 9100)); l.listen(64)
    end, i = time.monotonic() + secs, 0
    t0 = time.monotonic()
    while time.monotonic() < end:
        c = socket.create_connection(("127.0.0.1", 9100)); s, _ = l.accept()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close(); c.close()
        i += 1
        time.sleep(max(0, t0 + i / n - time.monotonic()))
    print("churn: %d connections in %.1fs" % (i, secs), file=sys.stderr)
    sys.exit(0)
print("ready", flush=True)
signal.pause()
EOF

CGO_ENABLED=0 go build -trimpath -o "$tmp/rstwatch" ./cmd/rstwatch
hz=$(getconf CLK_TCK)

newns() {
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
}
# start_load ARGS...: starts load.py in the namespace and waits for "ready".
loads=()
start_load() {
	local out="$tmp/load.${#pids[@]}"
	ip netns exec "$ns" python3 "$tmp/load.py" "$@" >"$out" &
	load=$!
	pids+=("$load")
	loads+=("$load")
	for _ in $(seq 600); do
		grep -q ready "$out" 2>/dev/null && return
		kill -0 "$load" 2>/dev/null || break
		sleep 0.1
	done
	echo "$0: load $* did not get ready" >&2
	exit 1
}
start_watch() {
	ip netns exec "$ns" "$tmp/rstwatch" watch --json --duration 50s >/dev/null 2>"$tmp/watch.err" &
	watch=$!
	pids+=("$watch")
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
# share TICKS0 TICKS1 SECONDS: CPU seconds per wall second, in % of a core.
share() { awk -v a="$1" -v b="$2" -v s="$3" -v hz="$hz" 'BEGIN{printf "%.2f%%", 100*(b-a)/hz/s}'; }
stop_all() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=() loads=()
}

echo "machine: $(nproc) vCPU, Linux $(uname -r), $(go version | awk '{print $3}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for m in $modes; do
	case $m in
	table)
		echo "== table: 20 runs per column (TestIntegrationShortLived)"
		RSTWATCH_SHORTLIVED_HOLDS=0,10ms,50ms,100ms,300ms,1s CGO_ENABLED=0 go test -count=1 \
			-run '^TestIntegrationShortLived$' -v ./sniff/explain/ | sed -n 's/^ *\(|.*\)/\1/p'
		;;
	busy)
		echo "== busy: 10,000 sockets in one process, 300 more processes, 20 new connections/s"
		newns
		start_load pairs 5000 0
		for _ in $(seq 300); do sleep 120 & pids+=("$!"); done
		start_watch
		sleep 4
		t0=$(cpu_ticks "$watch")
		sleep 20
		t1=$(cpu_ticks "$watch")
		ip netns exec "$ns" python3 "$tmp/load.py" churn 20 10
		t2=$(cpu_ticks "$watch")
		echo "idle 20s: $(share "$t0" "$t1" 20) of a core; 20 connections/s for 10s: $(share "$t1" "$t2" 10) of a core; peak RSS $(rss_kib "$watch") KiB"
		stop_all
		;;
	idle)
		echo "== idle: 60,000 sockets in four processes, no new connections"
		newns
		for i in 0 1 2 3; do start_load pairs 7500 $((10 * i)); done
		start_watch
		sleep 5
		t0=$(cpu_ticks "$watch")
		sleep 20
		t1=$(cpu_ticks "$watch")
		echo "idle 20s: $(share "$t0" "$t1" 20) of a core; peak RSS $(rss_kib "$watch") KiB"
		stop_all
		;;
	burst)
		echo "== burst: 72,000 listeners in four processes close at once"
		newns
		for i in 0 1 2 3; do start_load listeners 18000 "$i"; done
		start_watch
		sleep 5
		t0=$(cpu_ticks "$watch")
		r0=$(rss_kib "$watch")
		kill -USR1 "${loads[@]}"
		sleep 8
		t1=$(cpu_ticks "$watch")
		echo "before the close: peak RSS $r0 KiB; close burst: $(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)/hz}') CPU s in 8 s; peak RSS $(rss_kib "$watch") KiB"
		stop_all
		;;
	esac
done
