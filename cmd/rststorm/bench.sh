#!/usr/bin/env bash
# bench.sh: rstwatch against tcpdump under TCP reset storms, and the capture's
# cost to bulk TCP traffic. Run as root from anywhere in the checkout:
#
#   sudo cmd/rststorm/bench.sh           # the full run behind README's tables (~10 min)
#   sudo cmd/rststorm/bench.sh --smoke   # a few seconds at a low rate (CI)
#
# Every packet stays inside network namespaces that rststorm creates and
# deletes (also on Ctrl-C). Knobs (environment): RATES (packets/s, "max" is
# flat out), RUN_SECONDS, SYN_RATES, BULK_BYTES, BULK_ROUNDS, LONG_SECONDS.
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
	RATES=${RATES:-10000} RUN_SECONDS=${RUN_SECONDS:-2} SYN_RATES=${SYN_RATES:-5000}
	BULK_BYTES=${BULK_BYTES:-268435456} BULK_ROUNDS=${BULK_ROUNDS:-1} LONG_SECONDS=${LONG_SECONDS:-0}
fi
RATES=${RATES:-10000 50000 100000 200000 max}
RUN_SECONDS=${RUN_SECONDS:-5}
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
# last argument); pairs are compared below.
sniffers=(
	"rstwatch --json|$rw watch --json"
	"tcpdump -v|tcpdump -i any -n -v"
	"rstwatch -w|$rw watch -w /dev/null"
	"tcpdump -w|tcpdump -i any -n -w /dev/null"
)

machine() {
	echo "machine: $(nproc) vCPU $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(go version | awk '{print $3}'), $(tcpdump --version 2>&1 | head -1), $(tcpdump --version 2>&1 | sed -n 2p)"
}
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1==k{print $2}'; }

results="$tmp/results"
: >"$results"
n=0
run_storm() { # mode rate name cmd...
	local mode=$1 rate=$2 name=$3; shift 3
	local r=$rate count
	if [ "$rate" = max ]; then r=0; count=$((50000000)); else count=$((rate * RUN_SECONDS)); fi
	n=$((n + 1))
	local line
	if ! line=$("$storm" storm --prefix "$prefix-$n" --mode "$mode" --rate "$r" --count "$count" \
		--duration "${RUN_SECONDS}s" --linger 1s -- "$@"); then
		echo "$0: storm failed: $name at $rate/s" >&2
		exit 1
	fi
	echo "$mode|$rate|$name|$line" >>"$results"
	echo "  $mode $rate/s $name: $line" >&2
}

echo "$(machine)" >&2
for mode in rst syn; do
	rates=$RATES
	[ "$mode" = syn ] && rates=$SYN_RATES
	for rate in $rates; do
		for s in "${sniffers[@]}"; do
			name=${s%%|*}
			read -r -a argv <<<"${s#*|}"
			if [[ $name == tcpdump* ]]; then argv+=("$filter"); fi
			run_storm "$mode" "$rate" "$name" "${argv[@]}"
		done
	done
done

table() { # mode
	printf '%-5s %-8s %-16s %10s %10s %9s %9s %8s %10s %9s\n' mode rate/s sniffer resets captured dropped missing cpu_s "cpu_s/M" rss_MiB
	while IFS='|' read -r mode rate name line; do
		[ "$mode" = "$1" ] || continue
		local resets cap drop cpu rss
		resets=$(kv "$line" resets) cap=$(kv "$line" captured) drop=$(kv "$line" dropped)
		cpu=$(kv "$line" cpu) rss=$(kv "$line" maxrss_kib)
		[ "$rate" = max ] && rate="max=$(kv "$line" pps)"
		awk -v m="$mode" -v r="$rate" -v nm="$name" -v s="$resets" -v c="$cap" -v d="$drop" -v cpu="$cpu" -v rss="$rss" 'BEGIN{
			printf "%-5s %-8s %-16s %10d %10d %9d %9d %8.3f %10.2f %9.1f\n", m, r, nm, s, c, d, s-c-d, cpu, (c>0? cpu/c*1e6 : 0), rss/1024 }'
	done <"$results"
}
ratios() { # mode
	printf '%-5s %-8s %-26s %14s %14s %12s\n' mode rate/s "pair (rstwatch/tcpdump)" captured "cpu_s/M" peak_rss
	while IFS='|' read -r mode rate name line; do
		[ "$mode" = "$1" ] || continue
		local other
		case $name in "rstwatch --json") other="tcpdump -v" ;; "rstwatch -w") other="tcpdump -w" ;; *) continue ;; esac
		local tl
		tl=$(awk -F'|' -v m="$mode" -v r="$rate" -v o="$other" '$1==m && $2==r && $3==o {print $4}' "$results")
		# At "max" each run gets the rate the generator reaches beside that
		# sniffer, so captures compare as shares of the resets sent.
		awk -v m="$mode" -v r="$rate" -v p="${name#rstwatch } / ${other#tcpdump }" \
			-v c1="$(kv "$line" captured)" -v c2="$(kv "$tl" captured)" \
			-v s1="$(kv "$line" resets)" -v s2="$(kv "$tl" resets)" \
			-v u1="$(kv "$line" cpu)" -v u2="$(kv "$tl" cpu)" \
			-v m1="$(kv "$line" maxrss_kib)" -v m2="$(kv "$tl" maxrss_kib)" 'BEGIN{
			pm1 = c1>0 ? u1/c1 : 0; pm2 = c2>0 ? u2/c2 : 0
			printf "%-5s %-8s %-26s %14s %14s %12.2f\n", m, r, p, sprintf("%.3f", (c2>0 && s1>0 ? (c1/s1)/(c2/s2) : 0)), (pm2>0 ? sprintf("%.2f", pm1/pm2) : "-"), (m2>0 ? m1/m2 : 0) }'
	done <"$results"
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
echo "Reset storms, ${RUN_SECONDS}s per run (IPv4 and IPv6 alternating; rst: crafted resets into the sniffer's namespace; syn: SYNs to closed ports, answered by its kernel)."
echo "resets: reached (rst) or left (syn) the namespace's TCP; missing = resets - captured - dropped (0: every loss is reported); cpu_s/M: CPU seconds per million resets captured."
for mode in rst syn; do table "$mode"; done
echo
echo "Ratios rstwatch/tcpdump, same storm (captured: share of the resets captured, higher is better; cpu_s/M and peak_rss: lower is better)"
for mode in rst syn; do ratios "$mode"; done
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
	while IFS='|' read -r mode rate name line; do
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
