#!/usr/bin/env bash
# bench.sh: rstwatch against tcpdump under TCP reset storms, and the capture's
# cost to bulk TCP traffic. Run as root from anywhere in the checkout:
#
#   sudo cmd/rststorm/bench.sh           # the full run behind README's tables (~10 min)
#   sudo cmd/rststorm/bench.sh --smoke   # a few seconds at a low rate (CI)
#
# Every packet stays inside network namespaces that rststorm creates and
# deletes (also on Ctrl-C). Knobs (environment): RATES (packets/s, "max" is
# flat out), RUN_SECONDS, SYN_RATES, ROUNDS (interleaved storm rounds; the
# pairs table gives medians), BULK_BYTES, BULK_ROUNDS, LONG_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

smoke=0
case "${1:-}" in
--smoke) smoke=1 ;;
"") ;;
*) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
if [ "$smoke" = 1 ]; then
	RATES=${RATES:-10000} RUN_SECONDS=${RUN_SECONDS:-2} SYN_RATES=${SYN_RATES:-5000} ROUNDS=${ROUNDS:-1}
	BULK_BYTES=${BULK_BYTES:-268435456} BULK_ROUNDS=${BULK_ROUNDS:-1} LONG_SECONDS=${LONG_SECONDS:-0}
fi
RATES=${RATES:-10000 50000 100000 200000 max}
RUN_SECONDS=${RUN_SECONDS:-5}
ROUNDS=${ROUNDS:-3}
SYN_RATES=${SYN_RATES:-50000 max}
BULK_BYTES=${BULK_BYTES:-2147483648}
BULK_ROUNDS=${BULK_ROUNDS:-5}
LONG_SECONDS=${LONG_SECONDS:-300}

if [ "$(id -u)" != 0 ]; then echo "$0: run as root (it creates network namespaces)" >&2; exit 2; fi
if ! command -v tcpdump >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpdump >/dev/null
fi

tmp=$(mktemp -d)
prefix="rstbench-$$"
cleanup() {
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do ip netns del "$ns" || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CGO_ENABLED=0 go build -trimpath -o "$tmp/rstwatch" ./cmd/rstwatch
CGO_ENABLED=0 go build -trimpath -o "$tmp/rststorm" ./cmd/rststorm
rw="$tmp/rstwatch"
storm="$tmp/rststorm"

# The same reset filter for tcpdump: `tcp[tcpflags]` matches IPv4 only, so
# IPv6 TCP (no extension headers: the storm has none) is matched by hand.
filter='tcp[tcpflags] & tcp-rst != 0 or (ip6 proto 6 and ip6[53] & 4 != 0)'
# name|sniffer command (stdout goes to /dev/null; tcpdump gets $filter as its
# last argument); pairs are compared below. rstwatch -w, as tcpdump -w,
# writes the file and prints no lines.
sniffers=(
	"rstwatch -w|$rw watch -w /dev/null"
	"tcpdump -w|tcpdump -i any -n -w /dev/null"
	"rstwatch --json|$rw watch --json"
	"tcpdump -v|tcpdump -i any -n -v"
)

machine() {
	echo "machine: $(nproc) vCPU $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(go version | awk '{print $3}'), $(tcpdump --version 2>&1 | head -1), $(tcpdump --version 2>&1 | sed -n 2p)"
}
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1==k{print $2}'; }

results="$tmp/results"
: >"$results"
n=0
run_storm() { # mode rate round name cmd...
	local mode=$1 rate=$2 round=$3 name=$4; shift 4
	local r=$rate count
	if [ "$rate" = max ]; then r=0; count=$((50000000)); else count=$((rate * RUN_SECONDS)); fi
	n=$((n + 1))
	local line
	if ! line=$("$storm" storm --prefix "$prefix-$n" --mode "$mode" --rate "$r" --count "$count" \
		--duration "${RUN_SECONDS}s" --linger 1s -- "$@"); then
		echo "$0: storm failed: $name at $rate/s" >&2
		exit 1
	fi
	echo "$mode|$rate|$round|$name|$line" >>"$results"
	echo "  $mode $rate/s round $round $name: $line" >&2
}

echo "$(machine)" >&2
for mode in rst syn; do
	rates=$RATES
	[ "$mode" = syn ] && rates=$SYN_RATES
	for rate in $rates; do
		# Rounds interleave the sniffers, so that a slow spell of this
		# shared machine falls on all of them.
		for round in $(seq "$ROUNDS"); do
			for s in "${sniffers[@]}"; do
				name=${s%%|*}
				read -r -a argv <<<"${s#*|}"
				if [[ $name == tcpdump* ]]; then argv+=("$filter"); fi
				run_storm "$mode" "$rate" "$round" "$name" "${argv[@]}"
			done
		done
	done
done

table() { # mode
	printf '%-5s %-8s %-5s %-16s %10s %10s %9s %9s %8s %10s %9s\n' mode rate/s round sniffer resets captured dropped missing cpu_s "cpu_s/M" rss_MiB
	while IFS='|' read -r mode rate round name line; do
		[ "$mode" = "$1" ] || continue
		local resets cap drop cpu rss
		resets=$(kv "$line" resets) cap=$(kv "$line" captured) drop=$(kv "$line" dropped)
		cpu=$(kv "$line" cpu) rss=$(kv "$line" maxrss_kib)
		[ "$rate" = max ] && rate="max=$(kv "$line" pps)"
		awk -v m="$mode" -v r="$rate" -v rd="$round" -v nm="$name" -v s="$resets" -v c="$cap" -v d="$drop" -v cpu="$cpu" -v rss="$rss" 'BEGIN{
			printf "%-5s %-8s %-5s %-16s %10d %10d %9d %9d %8.3f %10.2f %9.1f\n", m, r, rd, nm, s, c, d, s-c-d, cpu, (c>0? cpu/c*1e6 : 0), rss/1024 }'
	done <"$results"
}
# pairs prints, per rate, each rstwatch path beside its tcpdump counterpart:
# medians over the rounds (and their range) of CPU seconds per million
# resets captured, of the share of resets captured and of peak RSS, and the
# ratio of the medians. The last pair is the issue's yardstick for JSON:
# rstwatch --json against tcpdump -w, the cheapest way to keep everything.
pairs() { # mode
	printf '%-5s %-6s %-28s %-22s %-22s %7s %9s %9s %12s\n' mode rate/s "pair (rstwatch vs tcpdump)" "rstwatch cpu_s/M" "tcpdump cpu_s/M" ratio "kept_rw" "kept_td" "rss_MiB"
	local rate
	for rate in $(awk -F'|' -v m="$1" '$1==m && !seen[$2]++ {print $2}' "$results"); do
		for pair in "rstwatch -w|tcpdump -w" "rstwatch --json|tcpdump -v" "rstwatch --json|tcpdump -w"; do
			awk -F'|' -v m="$1" -v r="$rate" -v a="${pair%%|*}" -v b="${pair#*|}" '
			function kv(line, k,   n, i, f, x) { n = split(line, f, " "); for (i = 1; i <= n; i++) { split(f[i], x, "="); if (x[1] == k) return x[2] } return "" }
			function med(arr, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && arr[j-1] > arr[j]; j--) { t = arr[j]; arr[j] = arr[j-1]; arr[j-1] = t } return n % 2 ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2 }
			$1 == m && $2 == r && ($4 == a || $4 == b) {
				w = ($4 == a) ? "a" : "b"
				c = kv($5, "captured"); s = kv($5, "resets")
				n[w]++
				cpu[w, n[w]] = (c > 0 ? kv($5, "cpu") / c * 1e6 : 0)
				kept[w, n[w]] = (s > 0 ? 100 * c / s : 0)
				rss[w, n[w]] = kv($5, "maxrss_kib") / 1024
			}
			END {
				if (!n["a"] || !n["b"]) exit
				for (w in n) {
					lo[w] = 1e18; hi[w] = 0
					for (i = 1; i <= n[w]; i++) { x[i] = cpu[w, i]; if (x[i] < lo[w]) lo[w] = x[i]; if (x[i] > hi[w]) hi[w] = x[i] }
					mc[w] = med(x, n[w])
					for (i = 1; i <= n[w]; i++) x[i] = kept[w, i]
					mk[w] = med(x, n[w])
					for (i = 1; i <= n[w]; i++) x[i] = rss[w, i]
					mr[w] = med(x, n[w])
				}
				rate = r == "max" ? "max" : r
				printf "%-5s %-6s %-28s %-22s %-22s %7s %8.1f%% %8.1f%% %12s\n", m, rate, substr(a, 10) " vs " substr(b, 9),
					sprintf("%.3f (%.3f-%.3f)", mc["a"], lo["a"], hi["a"]), sprintf("%.3f (%.3f-%.3f)", mc["b"], lo["b"], hi["b"]),
					(mc["b"] > 0 ? sprintf("%.2f", mc["a"] / mc["b"]) : "-"), mk["a"], mk["b"], sprintf("%.1f/%.1f", mr["a"], mr["b"])
			}' "$results"
		done
	done
}

echo "== bulk loopback TCP (${BULK_BYTES} bytes per transfer, ${BULK_ROUNDS} rounds, alternating)" >&2
bulk="$tmp/bulk"
: >"$bulk"
for round in $(seq "$BULK_ROUNDS"); do
	for cfg in none tcpdump rstwatch; do
		n=$((n + 1))
		case $cfg in
		none) argv=() ;;
		tcpdump) argv=(-- tcpdump -i any -n -w /dev/null "$filter") ;;
		rstwatch) argv=(-- "$rw" watch --json) ;;
		esac
		line=$("$storm" bulk --prefix "$prefix-$n" --bytes "$BULK_BYTES" --reps 1 "${argv[@]}")
		echo "$cfg|$line" >>"$bulk"
		echo "  round $round $cfg: $line" >&2
	done
done

long=""
if [ "$LONG_SECONDS" -gt 0 ]; then
	echo "== ${LONG_SECONDS}s storm at the generator's maximum, rstwatch --json" >&2
	n=$((n + 1))
	long=$("$storm" storm --prefix "$prefix-$n" --rate 0 --count 1000000000 --duration "${LONG_SECONDS}s" --linger 1s -- "$rw" watch --json)
	echo "  $long" >&2
fi

echo
machine
echo
echo "Reset storms, ${RUN_SECONDS}s per run, ${ROUNDS} interleaved round(s) (IPv4 and IPv6 alternating; rst: crafted resets into the sniffer's namespace; syn: SYNs to closed ports, answered by its kernel)."
echo "resets: reached (rst) or left (syn) the namespace's TCP; missing = resets - captured - dropped (0: every loss is reported); cpu_s/M: CPU seconds per million resets captured."
for mode in rst syn; do table "$mode"; done
echo
echo "Pairs, medians of ${ROUNDS} round(s) (range): cpu_s/M, CPU seconds per million resets captured (lower is better); ratio = rstwatch/tcpdump of the medians; kept: share of the resets captured; rss_MiB: peak RSS rstwatch/tcpdump"
for mode in rst syn; do pairs "$mode"; done
echo
echo "Bulk loopback TCP, ${BULK_BYTES} bytes per transfer, median of ${BULK_ROUNDS} (Gbit/s)"
printf '%-10s %8s %10s %s\n' sniffer gbit/s "% of none" "all rounds"
base=$(awk -F'|' '$1=="none"{print $2}' "$bulk" | tr ' ' '\n' | awk -F= '$1=="gbps"{print $2}' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
for cfg in none tcpdump rstwatch; do
	all=$(awk -F'|' -v c="$cfg" '$1==c{print $2}' "$bulk" | tr ' ' '\n' | awk -F= '$1=="gbps"{print $2}')
	med=$(sort -n <<<"$all" | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	printf '%-10s %8.2f %9.1f%% %s\n' "$cfg" "$med" "$(awk -v a="$med" -v b="$base" 'BEGIN{print (b>0 ? 100*a/b : 0)}')" "$(tr '\n' ' ' <<<"$all")"
done
if [ -n "$long" ]; then
	echo
	echo "Memory over a ${LONG_SECONDS}s storm (rstwatch --json): sent=$(kv "$long" sent) captured=$(kv "$long" captured) dropped=$(kv "$long" dropped)" \
		"peak_rss=$(kv "$long" maxrss_kib) KiB, largest RSS in the first quarter $(kv "$long" rss_q1_kib) KiB, in the last quarter $(kv "$long" rss_q4_kib) KiB"
fi

if [ "$smoke" = 1 ]; then
	# The script must keep working: every run reported, and rstwatch lost
	# nothing at the smoke rate.
	fail=0
	while IFS='|' read -r mode rate round name line; do
		for k in resets captured dropped cpu maxrss_kib; do
			if [ -z "$(kv "$line" "$k")" ]; then echo "smoke: $mode $rate $name: no $k in: $line"; fail=1; fi
		done
		if [[ $name == rstwatch* ]] && [ "$(kv "$line" captured)" != "$(kv "$line" resets)" ]; then
			echo "smoke: $mode $rate $name captured $(kv "$line" captured) of $(kv "$line" resets) resets"; fail=1
		fi
	done <"$results"
	[ "$(wc -l <"$bulk")" -eq 3 ] || { echo "smoke: bulk runs missing"; fail=1; }
	[ "$fail" = 0 ] && echo "smoke: ok"
	exit "$fail"
fi
