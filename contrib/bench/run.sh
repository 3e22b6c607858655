#!/usr/bin/env bash
# Pass-through benchmark: highest clean calls/s for
#   a) SIPp UAC -> SIPp UAS                      (direct, the generator's own ceiling)
#   b) SIPp UAC -> slotgate (B2BUA) -> SIPp UAS
#   c) SIPp UAC -> Kamailio (stateful proxy, tm+rr+sl) -> SIPp UAS
# stepping the rate, the three series alternately at each rate with the same
# SIPp settings; a series stops at its first failing step.
#
# Usage:  contrib/bench/run.sh
# Knobs (environment):
#   STEP_SECS=20            seconds of load per step (calls per step = rate * STEP_SECS)
#   RATES="1000 2000 ..."   offered rates (calls/s), in increasing order
#   SERIES="a b c"          which series to run
#   HOLD_MS=100             pause between the ACK and the BYE (ms)
#   RECV_TIMEOUT_MS=10000   SIPp -recv_timeout: an answer later than this fails the call
#   GRACE_SECS=40           extra time a step may take before it is killed
#   MIN_RATE_PCT=95         the UAC must reach this % of the offered rate for a pass
#   COOLDOWN_SECS=2         pause between steps
#   WORK=/tmp/slotgate-bench  scratch directory (configs, SQLite store, per-step logs)
#   BENCH_SLOTGATE_BIN=path       use this binary instead of `cargo build --release`
#   KAMAILIO_SHM_MB=4096 KAMAILIO_PKG_MB=16
# See contrib/bench/README.md for the pass rule and how the figures are computed.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

STEP_SECS="${STEP_SECS:-20}"
RATES="${RATES:-1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 12000 14000 16000 18000 20000}"
SERIES="${SERIES:-a b c}"
HOLD_MS="${HOLD_MS:-100}"
RECV_TIMEOUT_MS="${RECV_TIMEOUT_MS:-10000}"
GRACE_SECS="${GRACE_SECS:-40}"
MIN_RATE_PCT="${MIN_RATE_PCT:-95}"
COOLDOWN_SECS="${COOLDOWN_SECS:-2}"
WORK="${WORK:-/tmp/slotgate-bench}"
BENCH_SLOTGATE_BIN="${BENCH_SLOTGATE_BIN:-}"
KAMAILIO_SHM_MB="${KAMAILIO_SHM_MB:-4096}"
KAMAILIO_PKG_MB="${KAMAILIO_PKG_MB:-16}"

# slotgate reads SLOTGATE_<SECTION>__<KEY> from the environment and refuses
# unknown keys: the generated config alone must decide, so drop them all.
for v in $(compgen -v SLOTGATE_); do unset "$v"; done

IP=127.0.0.1
SRV_PORT=15060   # slotgate or Kamailio
UAC_PORT=15061
UAS_PORT=15070   # the "trunk"

# The SIPp settings shared by every step of every series.
SIPP_COMMON=(-i "$IP" -nostdin -default_behaviors all,-abortunexp -buff_size 4194304
             -trace_stat -fd 1 -trace_err -max_log_size 1048576)

die() { echo "run.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
if ((${#missing[@]})); then
  die "missing ${missing[*]}: apt-get install sip-tester kamailio"
fi
for tool in awk timeout pgrep flock; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool (coreutils / procps / util-linux / gawk or mawk)"
done
[[ -n "$BENCH_SLOTGATE_BIN" ]] || command -v cargo >/dev/null 2>&1 || die "missing cargo (or set BENCH_SLOTGATE_BIN)"
[[ "$STEP_SECS" =~ ^[0-9]+$ && "$STEP_SECS" -ge 1 ]] || die "STEP_SECS must be a positive integer"
for r in $RATES; do [[ "$r" =~ ^[0-9]+$ && "$r" -ge 1 ]] || die "RATES: '$r' is not a positive integer"; done
for s in $SERIES; do [[ "$s" =~ ^[abc]$ ]] || die "SERIES: '$s' is not one of a b c"; done

mkdir -p "$WORK" || die "cannot create $WORK"

# One run at a time on this machine: the ports are fixed.
LOCK="${TMPDIR:-/tmp}/slotgate-bench.lock"
exec 9> "$LOCK" || die "cannot open $LOCK"
flock -n 9 || die "another run.sh holds $LOCK (ports 15060/15061/15070 are shared); wait for it"
RUN_DIR="$WORK/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN_DIR"

# ------------------------------------------------------------ process hygiene
STARTED=()   # every pid this script started (servers, SIPps)

kill_tree() { # pid: TERM the process and its descendants, KILL what is left
  local pid="$1" kids k
  [[ -n "$pid" ]] || return 0
  kids="$(descendants "$pid")"
  kill -TERM "$pid" $kids 2>/dev/null
  for _ in $(seq 50); do
    alive=0
    for k in "$pid" $kids; do kill -0 "$k" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "$pid" $kids 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

descendants() { # pid -> all descendant pids
  local p c
  for c in $(pgrep -P "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

cleanup() {
  local p
  for p in "${STARTED[@]}"; do kill_tree "$p"; done
  STARTED=()
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

# --------------------------------------------------------------- /proc helpers
port_hex() { printf '%04X' "$1"; }

# Sum of the drops column of the IPv4 UDP sockets bound to 127.0.0.1:PORT or *:PORT;
# "none" if there is no such socket.
udp_drops() {
  awk -v p=":$(port_hex "$1")" '
    NR > 1 && ($2 == "0100007F" p || $2 == "00000000" p) { n++; d += $NF }
    END { if (n) print d + 0; else print "none" }' /proc/net/udp
}

udp_bound() { [[ "$(udp_drops "$1")" != none ]]; }

wait_port_free() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do udp_bound "$1" || return 0; sleep 0.1; done
  return 1
}

wait_port_bound() { # port seconds pid
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    udp_bound "$1" && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# CPU time (ns) of all threads of the given processes, from schedstat.
cpu_ns() {
  local total=0 p f v
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r v _ < "$f" 2>/dev/null || continue
      total=$((total + v))
    done
  done
  echo "$total"
}

# "TID NS" for every thread of the given processes (for the busiest-thread figure).
cpu_by_thread() {
  local p f v
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r v _ < "$f" 2>/dev/null || continue
      f="${f%/schedstat}"; echo "${f##*/} $v"
    done
  done
}

# utime+stime in clock ticks (includes exited threads; coarse, logged only).
cpu_ticks() {
  local total=0 p
  for p in "$@"; do
    total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/"$p"/stat 2>/dev/null || echo 0)))
  done
  echo "$total"
}

vm_hwm_kb() { awk '/^VmHWM:/ { print $2 }' /proc/"$1"/status 2>/dev/null || echo 0; }

# Host CPU counters: "busy total steal" in jiffies.
host_cpu() {
  awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t, $9 }' /proc/stat
}

# Last row of a SIPp -trace_stat file as "NAME=VALUE" lines (cumulative counters),
# plus achieved_cps computed from the last periodic row before all calls were created.
sipp_stats() { # file target_calls
  awk -F';' -v target="$2" '
    function epoch(s,   a) { split(s, a, "\t"); return a[3] + 0 }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {
      rows++
      t = epoch($col["CurrentTime"]) - epoch($col["StartTime"])
      created = $col["TotalCallCreated"] + 0
      if (created < target && t >= 1) { rate = created / t }
      if (created >= target && first_full == 0 && t > 0) { first_full = t }
      last = $0
    }
    END {
      if (!rows) { print "rows=0"; exit }
      n = split(last, v, ";")
      print "rows=" rows
      print "created=" v[col["TotalCallCreated"]] + 0
      print "successful=" v[col["SuccessfulCall(C)"]] + 0
      print "failed=" v[col["FailedCall(C)"]] + 0
      print "retrans=" v[col["Retransmissions(C)"]] + 0
      print "timeout_recv=" v[col["FailedTimeoutOnRecv(C)"]] + 0
      print "max_udp_retrans=" v[col["FailedMaxUDPRetrans(C)"]] + 0
      print "unexpected=" v[col["FailedUnexpectedMessage(C)"]] + 0
      print "rejected=" v[col["FailedCallRejected(C)"]] + 0
      print "out_of_call=" v[col["OutOfCallMsgs(C)"]] + 0
      print "dead_call=" v[col["DeadCallMsgs(C)"]] + 0
      print "incoming=" v[col["IncomingCall(C)"]] + 0
      # Achieved generation rate: calls created / time, at the last 1 s sample
      # taken before the last call was created (exact count at a known instant);
      # for very short steps, fall back to target / first sample with all created.
      if (rate == 0 && first_full > 0) rate = target / first_full
      printf "achieved_cps=%.1f\n", rate
    }' "$1"
}

get() { # "key" from a sipp_stats block on stdin-less variable
  local key="$1" block="$2"
  awk -F= -v k="$key" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' <<<"$block"
}

# ------------------------------------------------------------------ build + configs
if [[ -z "$BENCH_SLOTGATE_BIN" ]]; then
  echo "== building slotgate (cargo build --release) in $ROOT"
  (cd "$ROOT" && cargo build --release) > "$RUN_DIR/cargo-build.log" 2>&1 ||
    { tail -30 "$RUN_DIR/cargo-build.log" >&2; die "cargo build --release failed (log: $RUN_DIR/cargo-build.log)"; }
  BENCH_SLOTGATE_BIN="$ROOT/target/release/slotgate"
fi
[[ -x "$BENCH_SLOTGATE_BIN" ]] || die "no slotgate binary at $BENCH_SLOTGATE_BIN"

SLOTGATE_DB="$WORK/slotgate.db"
SLOTGATE_TOML="$WORK/slotgate.toml"
cat > "$SLOTGATE_TOML" <<EOF
# Generated by contrib/bench/run.sh
[sip]
udp_listen = "$IP:$SRV_PORT"
tcp_listen = ""
[trunk]
address = "$IP:$UAS_PORT"
options_interval_secs = 0
[store]
url = "sqlite://$SLOTGATE_DB"
[api]
listen = ""
[log]
level = "warn"
EOF
"$BENCH_SLOTGATE_BIN" check-config --config "$SLOTGATE_TOML" > "$RUN_DIR/check-config.log" 2>&1 ||
  { cat "$RUN_DIR/check-config.log" >&2; die "slotgate check-config refused $SLOTGATE_TOML"; }

KAM_CFG="$HERE/kamailio-stateful.cfg"
KAM_CTL="unix:$WORK/kamailio-bench.ctl"
kamailio -c -f "$KAM_CFG" -A "CTL_SOCK=\"$KAM_CTL\"" > "$RUN_DIR/kamailio-check.log" 2>&1 ||
  { tail -20 "$RUN_DIR/kamailio-check.log" >&2; die "kamailio refuses $KAM_CFG"; }

for p in $SRV_PORT $UAC_PORT $UAS_PORT; do
  wait_port_free "$p" 5 || die "udp port $p on $IP is in use (a leftover sipp/kamailio/slotgate?)"
done

# ------------------------------------------------------------------- one step
SERVER_PID=""
SERVER_PIDS=()

start_server() { # series stepdir
  local s="$1" dir="$2"
  SERVER_PID=""
  SERVER_PIDS=()
  case "$s" in
    a) return 0 ;;
    b)
      rm -f "$SLOTGATE_DB" "$SLOTGATE_DB-wal" "$SLOTGATE_DB-shm"
      "$BENCH_SLOTGATE_BIN" run --config "$SLOTGATE_TOML" > "$dir/slotgate.out" 2> "$dir/slotgate.err" &
      SERVER_PID=$!
      ;;
    c)
      rm -f "$WORK/kamailio-bench.ctl"
      kamailio -f "$KAM_CFG" -DD -E -m "$KAMAILIO_SHM_MB" -M "$KAMAILIO_PKG_MB" -x tlsf -X tlsf \
        -A "CTL_SOCK=\"$KAM_CTL\"" -w "$WORK" > "$dir/kamailio.out" 2> "$dir/kamailio.err" &
      SERVER_PID=$!
      ;;
  esac
  STARTED+=("$SERVER_PID")
  if ! wait_port_bound "$SRV_PORT" 30 "$SERVER_PID"; then
    echo "   server ($s) did not bind udp $IP:$SRV_PORT; its stderr:" >&2
    tail -20 "$dir"/*.err >&2
    return 1
  fi
  sleep 1 # let Kamailio's children (or slotgate's runtime) settle
  SERVER_PIDS=("$SERVER_PID" $(descendants "$SERVER_PID"))
  return 0
}

stop_pid() { # pid
  local p="$1" i
  [[ -n "$p" ]] || return 0
  kill_tree "$p"
  for i in "${!STARTED[@]}"; do [[ "${STARTED[$i]}" == "$p" ]] && unset 'STARTED[i]'; done
  STARTED=("${STARTED[@]}")
}

# Counts of the usual SIPp error-log events in FILE (it caps at -max_log_size).
error_kinds() {
  awk '
    { n_rt += gsub(/receive timeout/, "&"); n_dead += gsub(/Dead call/, "&");
      n_unexp += gsub(/[Uu]nexpected/, "&"); n_abort += gsub(/[Aa]borting call/, "&");
      n_retr += gsub(/[Mm]ax retrans/, "&") }
    END { printf "receive-timeout=%d dead-call-msgs=%d unexpected=%d aborted=%d max-retrans=%d",
                 n_rt, n_dead, n_unexp, n_abort, n_retr }' "$1"
  (($(wc -c < "$1") >= 1000000)) && printf ' (log capped at 1 MB: counts are partial)'
  return 0
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", 100 * a / b; else print "100.000" }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

declare -A BEST BEST_CPU BEST_RSS RSS_MAX STOPPED CPU_US
SUMMARY_LINES=()

# Runs one step, prints its line, returns 0 if it passed.
run_step() { # series rate
  local s="$1" rate="$2" dir calls uac_pid uas_pid rc srv_port
  dir="$RUN_DIR/$s-$rate"
  mkdir -p "$dir"
  calls=$((rate * STEP_SECS))
  if [[ "$s" == a ]]; then srv_port=$UAS_PORT; else srv_port=$SRV_PORT; fi

  for p in $SRV_PORT $UAC_PORT $UAS_PORT; do
    wait_port_free "$p" 10 || { echo "   [$s] $rate cps: udp port $p still in use, step skipped"; return 1; }
  done

  # Trunk side.
  sipp -sf "$HERE/uas.xml" -p "$UAS_PORT" "${SIPP_COMMON[@]}" \
    -stf "$dir/uas-stat.csv" -error_file "$dir/uas-errors.log" \
    -timeout "$((STEP_SECS + GRACE_SECS + 10))s" > "$dir/uas.out" 2>&1 &
  uas_pid=$!
  STARTED+=("$uas_pid")
  if ! wait_port_bound "$UAS_PORT" 10 "$uas_pid"; then
    echo "   [$s] $rate cps: the UAS did not start: $(tail -3 "$dir/uas.out")"
    stop_pid "$uas_pid"; return 1
  fi

  if ! start_server "$s" "$dir"; then
    echo "   [$s] $rate cps: FAIL (server did not start)"
    stop_pid "$SERVER_PID"; stop_pid "$uas_pid"; return 1
  fi

  local target="$IP:$SRV_PORT"
  [[ "$s" == a ]] && target="$IP:$UAS_PORT"

  local drops0 cpu0 ticks0 host0 t0 t1 drops1 cpu1 ticks1 host1 hwm=0
  drops0="$(udp_drops "$srv_port")"
  cpu0=0; ticks0=0
  if ((${#SERVER_PIDS[@]})); then
    cpu0="$(cpu_ns "${SERVER_PIDS[@]}")"; ticks0="$(cpu_ticks "${SERVER_PIDS[@]}")"
    cpu_by_thread "${SERVER_PIDS[@]}" > "$dir/threads0"
  fi
  host0="$(host_cpu)"
  t0="$(date +%s.%N)"

  # PBX side, bounded by SIPp's own -timeout and by timeout(1).
  timeout -k 5 "$((STEP_SECS + GRACE_SECS))" \
    sipp -sf "$HERE/uac.xml" "$target" -p "$UAC_PORT" "${SIPP_COMMON[@]}" \
      -r "$rate" -m "$calls" -l 200000 -set hold "$HOLD_MS" -recv_timeout "$RECV_TIMEOUT_MS" \
      -stf "$dir/uac-stat.csv" -error_file "$dir/uac-errors.log" \
      -timeout "$((STEP_SECS + GRACE_SECS - 5))s" > "$dir/uac.out" 2>&1 &
  uac_pid=$!
  STARTED+=("$uac_pid")
  wait "$uac_pid"; rc=$?
  stop_pid "$uac_pid"
  t1="$(date +%s.%N)"

  # Let the last BYE transactions land, then read the server before it goes.
  sleep 1
  drops1="$(udp_drops "$srv_port")"
  cpu1=0; ticks1=0
  if ((${#SERVER_PIDS[@]})); then
    cpu1="$(cpu_ns "${SERVER_PIDS[@]}")"; ticks1="$(cpu_ticks "${SERVER_PIDS[@]}")"
    cpu_by_thread "${SERVER_PIDS[@]}" > "$dir/threads1"
    [[ "$s" == b ]] && hwm="$(vm_hwm_kb "$SERVER_PID")"
  fi
  host1="$(host_cpu)"
  local server_alive=1
  if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then server_alive=0; fi

  kill -INT "$uas_pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$uas_pid" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$uas_pid"
  stop_pid "$SERVER_PID"

  # ------------------------------------------------------------ verdict
  local uac uas created ok failed retrans achieved uas_failed uas_retrans
  uac="$(sipp_stats "$dir/uac-stat.csv" "$calls" 2>/dev/null)"
  uas="$(sipp_stats "$dir/uas-stat.csv" 0 2>/dev/null)"
  created="$(get created "$uac")"; ok="$(get successful "$uac")"
  achieved="$(get achieved_cps "$uac")"
  uas_failed="$(get failed "$uas")"; uas_retrans="$(get retrans "$uas")"
  failed=$((calls - ok)); ((failed < 0)) && failed=0
  failed=$((failed + uas_failed))
  retrans=$(($(get retrans "$uac") + uas_retrans))

  local fpct rpct ddrops reasons=() verdict
  fpct="$(pct "$failed" "$calls")"; rpct="$(pct "$retrans" "$calls")"
  if [[ "$drops0" == none || "$drops1" == none ]]; then ddrops="?"; else ddrops=$((drops1 - drops0)); fi

  ((rc == 0 || rc == 1)) || reasons+=("sipp exit $rc$( ((rc == 124 || rc == 137)) && echo ' (step timed out)')")
  lt "$fpct" 0.1 || reasons+=("failed ${fpct}%")
  lt "$rpct" 0.1 || reasons+=("retransmitted ${rpct}%")
  [[ "$ddrops" == 0 ]] || reasons+=("udp drops $ddrops")
  lt "$achieved" "$(awk -v r="$rate" -v p="$MIN_RATE_PCT" 'BEGIN { print r * p / 100 }')" &&
    reasons+=("offered rate not reached (${achieved} cps)")
  ((server_alive)) || reasons+=("server exited")
  if ((${#reasons[@]})); then verdict="FAIL"; else verdict="PASS"; fi

  local cpu_us="-" core_pct="-" rss="-" host_busy host_steal
  read -r host_busy host_steal < <(awk -v a="$host0" -v b="$host1" 'BEGIN {
      split(a, x, " "); split(b, y, " "); t = y[2] - x[2]
      if (t > 0) printf "%.0f %.0f\n", 100 * (y[1] - x[1]) / t, 100 * (y[3] - x[3]) / t; else print "0 0" }')
  if [[ "$s" != a ]]; then
    cpu_us="$(awk -v c="$((cpu1 - cpu0))" -v n="$ok" 'BEGIN { if (n > 0) printf "%.1f", c / 1000 / n; else print "-" }')"
    core_pct="$(awk -v c="$((cpu1 - cpu0))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 100 * c / 1e9 / (b + 1 - a) }')"
  fi
  [[ "$s" == b ]] && rss="$(awk -v k="$hwm" 'BEGIN { printf "%.1f MB", k / 1024 }')"
  # Busiest single thread (slotgate) or process (Kamailio) over the same window.
  local busiest="-"
  if [[ -s "$dir/threads1" ]]; then
    busiest="$(awk -v a="$t0" -v b="$t1" '
      FNR == NR { s0[$1] = $2; next }
      { d = $2 - s0[$1]; if (d > m) m = d }
      END { printf "%.0f", 100 * m / 1e9 / (b + 1 - a) }' "$dir/threads0" "$dir/threads1")"
  fi

  printf '   [%s] %6d cps: %s  calls=%d ok=%d failed=%d (%s%%) retrans=%d (%s%%) drops=%s achieved=%s cps' \
    "$s" "$rate" "$verdict" "$calls" "$ok" "$failed" "$fpct" "$retrans" "$rpct" "$ddrops" "$achieved"
  [[ "$s" != a ]] && printf ' cpu=%s us/call (%s%% of a core, busiest %s %s%%)' "$cpu_us" "$core_pct" \
    "$([[ "$s" == b ]] && echo thread || echo process)" "$busiest"
  [[ "$s" == b ]] && printf ' rss=%s' "$rss"
  printf ' host=%s%% busy, steal %s%%, load %s\n' "$host_busy" "$host_steal" "$(cut -d' ' -f1 /proc/loadavg)"
  if [[ "$verdict" == FAIL ]]; then
    printf '         why: %s\n' "$(IFS=';'; echo "${reasons[*]}")"
    printf '         uac: created=%s timeout_recv=%s max_udp_retrans=%s unexpected=%s rejected=%s out_of_call=%s dead_call=%s; uas: calls=%s failed=%s retrans=%s out_of_call=%s\n' \
      "$created" "$(get timeout_recv "$uac")" "$(get max_udp_retrans "$uac")" "$(get unexpected "$uac")" \
      "$(get rejected "$uac")" "$(get out_of_call "$uac")" "$(get dead_call "$uac")" \
      "$(get incoming "$uas")" "$uas_failed" "$uas_retrans" "$(get out_of_call "$uas")"
    local f
    for f in "$dir/uac-errors.log" "$dir/uas-errors.log"; do
      [[ -s "$f" ]] || continue
      # SIPp glues events together; count the usual kinds, show the first real one.
      printf '         %s: %s\n' "${f#"$RUN_DIR"/}" "$(error_kinds "$f")"
      grep -v -e '^[[:space:]]*$' -e 'Maximum number of open sockets' -e '^The following events occurred' "$f" |
        head -8 | cut -c1-200 | sed 's/^/           | /'
    done
    for f in "$dir/slotgate.err" "$dir/kamailio.err"; do
      [[ -s "$f" ]] || continue
      printf '         %s (%s lines), first lines:\n' "${f#"$RUN_DIR"/}" "$(wc -l < "$f")"
      grep -v '^[[:space:]]*$' "$f" | head -8 | cut -c1-200 | sed 's/^/           | /'
    done
  fi
  {
    echo "series=$s rate=$rate calls=$calls verdict=$verdict sipp_rc=$rc"
    echo "wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')s"
    echo "server_cpu_ns=$((cpu1 - cpu0)) server_cpu_ticks=$((ticks1 - ticks0)) vm_hwm_kb=$hwm"
    echo "drops_before=$drops0 drops_after=$drops1"
    echo "--- uac"; echo "$uac"; echo "--- uas"; echo "$uas"
  } > "$dir/summary.txt"

  if [[ "$verdict" == PASS ]]; then
    BEST[$s]="$rate"
    if [[ "$s" != a ]]; then
      BEST_CPU[$s]="$cpu_us"
      CPU_US["$s-$rate"]="$cpu_us"
    fi
    [[ "$s" == b ]] && BEST_RSS[b]="$hwm"
    if [[ "$s" == b ]]; then
      RSS_MAX[b]="$(awk -v a="${RSS_MAX[b]:-0}" -v b="$hwm" 'BEGIN { print (b > a ? b : a) }')"
    fi
    return 0
  fi
  if [[ "$s" == b ]]; then
    RSS_MAX[b]="$(awk -v a="${RSS_MAX[b]:-0}" -v b="$hwm" 'BEGIN { print (b > a ? b : a) }')"
  fi
  return 1
}

# ----------------------------------------------------------------------- main
LOAD_START="$(uptime)"
echo "== slotgate pass-through benchmark  ($(date -Is))"
echo "   machine: $(nproc) CPUs; uptime at start: ${LOAD_START# }"
echo "   binary: $BENCH_SLOTGATE_BIN"
echo "   steps: ${STEP_SECS}s each, rates: $RATES; series: $SERIES; hold ${HOLD_MS} ms; logs: $RUN_DIR"
echo "   sipp (both sides): ${SIPP_COMMON[*]}  UAC: -r RATE -m RATE*${STEP_SECS} -l 200000 -recv_timeout ${RECV_TIMEOUT_MS}"
echo "   pass rule: failed < 0.1 %, retransmitted < 0.1 %, 0 UDP drops on the server's socket, >= ${MIN_RATE_PCT} % of the offered rate reached"

for rate in $RATES; do
  active=0
  for s in $SERIES; do [[ -z "${STOPPED[$s]:-}" ]] && active=1; done
  ((active)) || break
  for s in $SERIES; do
    [[ -z "${STOPPED[$s]:-}" ]] || continue
    if ! run_step "$s" "$rate"; then STOPPED[$s]="$rate"; fi
    sleep "$COOLDOWN_SECS"
  done
done

LOAD_END="$(uptime)"

# -------------------------------------------------------------------- summary
label() { case "$1" in a) echo "a  SIPp -> SIPp";; b) echo "b  SIPp -> slotgate -> SIPp";; c) echo "c  SIPp -> Kamailio -> SIPp";; esac; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (x + 0 > 0 && y + 0 > 0) printf "%.2f", x / y; else print "n/a" }'; }

# Mean CPU per call over the rates at which both b and c were clean.
common_b=0; common_c=0; common_n=0; common_rates=""
for rate in $RATES; do
  if [[ -n "${CPU_US[b-$rate]:-}" && -n "${CPU_US[c-$rate]:-}" ]]; then
    common_b="$(awk -v a="$common_b" -v b="${CPU_US[b-$rate]}" 'BEGIN { print a + b }')"
    common_c="$(awk -v a="$common_c" -v b="${CPU_US[c-$rate]}" 'BEGIN { print a + b }')"
    common_n=$((common_n + 1)); common_rates+="$rate "
  fi
done

echo
echo "== summary (steps of ${STEP_SECS}s; a series stops at its first failing step)"
printf '   %-30s %15s %18s %24s\n' "series" "best clean cps" "first failing" "server CPU/call at best"
for s in a b c; do
  [[ " $SERIES " == *" $s "* ]] || continue
  best="${BEST[$s]:-0}"
  stop="${STOPPED[$s]:-none}"
  cpu="-"
  [[ "$s" != a && -n "${BEST_CPU[$s]:-}" ]] && cpu="${BEST_CPU[$s]} us"
  printf '   %-30s %15s %18s %24s\n' "$(label "$s")" "$best" "$stop" "$cpu"
done
echo "   ratio b/a (best clean cps):          $(ratio "${BEST[b]:-0}" "${BEST[a]:-0}")"
echo "   ratio b/c (best clean cps):          $(ratio "${BEST[b]:-0}" "${BEST[c]:-0}")"
if ((common_n)); then
  mb="$(awk -v s="$common_b" -v n="$common_n" 'BEGIN { printf "%.1f", s / n }')"
  mc="$(awk -v s="$common_c" -v n="$common_n" 'BEGIN { printf "%.1f", s / n }')"
  echo "   CPU per call, mean over the rates both passed (${common_rates% }):"
  echo "     slotgate: $mb us   Kamailio: $mc us   ratio b/c: $(ratio "$mb" "$mc")"
else
  echo "   CPU per call: no rate at which both b and c passed"
fi
echo "   slotgate CPU per call at its best clean step: ${BEST_CPU[b]:-n/a} us"
echo "   Kamailio CPU per call at its best clean step: ${BEST_CPU[c]:-n/a} us"
mb_of() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
if [[ -n "${RSS_MAX[b]:-}" ]]; then
  at_best="n/a"
  [[ -n "${BEST_RSS[b]:-}" ]] && at_best="$(mb_of "${BEST_RSS[b]}")"
  echo "   slotgate peak RSS (VmHWM): $at_best at its best clean step, $(mb_of "${RSS_MAX[b]}") max over all its steps"
else
  echo "   slotgate peak RSS (VmHWM): n/a"
fi
echo "   uptime at start: ${LOAD_START# }"
echo "   uptime at end:   ${LOAD_END# }"
echo "   per-step logs: $RUN_DIR"
