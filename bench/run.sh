#!/usr/bin/env bash
# smtpsend side by side with msmtp: peak memory by message size, client
# flights per session, syscalls per message, wall time for a loop of small
# messages. See BENCHMARKS.md for what each number means.
#
#   bench/run.sh                  as root on Debian 12 (installs msmtp,
#                                 strace, time, hyperfine when missing)
#
# Knobs (environment): LOOP_N (200) messages in the wall-time loop;
# MEM_RUNS (3) runs per tool and size for peak memory; SIZES_MB ("1 10
# 100"); SETTLE_MS (200) how long the flight-counting sink waits for quiet
# before it answers (above Linux's 40 ms delayed ACK, which can hold back a
# Nagle-delayed segment); SINK_LIFETIME (3600 s) after which every sink is gone
# whatever happens; KEEP_WORK=1 keeps the scratch directory;
# CARGO_TARGET_DIR as cargo has it.
#
# Everything talks to 127.0.0.1 only. Raw records go to
# bench/results/<UTC date>.txt (a rerun on the same day replaces it); the
# summary table is printed at the end and appended to that file.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOOP_N=${LOOP_N:-200}
MEM_RUNS=${MEM_RUNS:-3}
SIZES_MB=${SIZES_MB:-"1 10 100"}
SETTLE_MS=${SETTLE_MS:-200}
SINK_LIFETIME=${SINK_LIFETIME:-3600}
RESULTS_DIR=$BENCH/results
RESULTS=$RESULTS_DIR/$(date -u +%F).txt
SMTPSEND=$CARGO_TARGET_DIR/release/smtpsend
PY=python3

# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

WORK=$(mktemp -d /tmp/smtpsend-bench.XXXXXX)
trap cleanup EXIT

# The client's argv, in CLIENT: the same envelope, EHLO name and message
# for both; no configuration file for either (HOME is a scratch dir).
client_argv() { # TOOL PORT
    case $1 in
    smtpsend) CLIENT=("$SMTPSEND" --host 127.0.0.1 --port "$2" --tls none
        --domain bench.example -i -f a@example.org rcpt@example.org) ;;
    msmtp) CLIENT=(msmtp -C /dev/null --host=127.0.0.1 --port="$2" --tls=off
        --domain=bench.example --from=a@example.org rcpt@example.org) ;;
    *) die "unknown tool $1" ;;
    esac
}

install_deps msmtp:/usr/bin/msmtp strace:/usr/bin/strace time:/usr/bin/time \
    hyperfine:/usr/bin/hyperfine python3:/usr/bin/python3
say "building smtpsend (release)"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
[[ -x $SMTPSEND ]] || die "no binary at $SMTPSEND"

export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config LC_ALL=C
# No detached queue retrier: it would deliver behind the benchmarks' backs.
export SMTPSEND_NO_RETRIER=1
mkdir -p "$HOME" "$RESULTS_DIR"

results_header "bench/run.sh" >"$RESULTS"

say "generating messages"
declare -A MSG SHA
for mb in $SIZES_MB; do
    info=$("$PY" "$BENCH/genmsg.py" $((mb * 1000 * 1000)) "$WORK/msg-${mb}MB.eml")
    MSG[${mb}MB]=$WORK/msg-${mb}MB.eml SHA[${mb}MB]=$(sha_of "$info")
    record message - "${mb}MB" "$info"
done
info=$("$PY" "$BENCH/genmsg.py" 2000 "$WORK/msg-small.eml")
MSG[small]=$WORK/msg-small.eml SHA[small]=$(sha_of "$info")
record message - small "$info"
if [[ -z ${MSG[1MB]:-} ]]; then
    info=$("$PY" "$BENCH/genmsg.py" 1000000 "$WORK/msg-1MB.eml")
    MSG[1MB]=$WORK/msg-1MB.eml SHA[1MB]=$(sha_of "$info")
fi

say "starting sinks on 127.0.0.1"
start_sink pipe --pipelining
start_sink nopipe --no-pipelining
start_sink fpipe --pipelining --settle-ms "$SETTLE_MS"
start_sink fnopipe --no-pipelining --settle-ms "$SETTLE_MS"

TOOLS=(smtpsend msmtp)

# ------------------------------------------------ 1. peak memory by size --

# The floor: the same binary started with no message at all.
for tool in "${TOOLS[@]}"; do
    for run in $(seq "$MEM_RUNS"); do
        client_argv "$tool" "${PORT[pipe]}"
        /usr/bin/time -v -o "$WORK/time.txt" "${CLIENT[0]}" --version >/dev/null
        record memory "$tool" "--version, no message" "$("$PY" "$BENCH/analyse.py" rss "$WORK/time.txt")"
    done
done
for mb in $SIZES_MB; do
    for tool in "${TOOLS[@]}"; do
        for run in $(seq "$MEM_RUNS"); do
            say "memory: $tool, ${mb} MB, run $run"
            client_argv "$tool" "${PORT[pipe]}"
            n=$(sessions pipe)
            # A real pipe, as cron or a script would give: no seeking.
            # shellcheck disable=SC2002
            cat "${MSG[${mb}MB]}" | /usr/bin/time -v -o "$WORK/time.txt" "${CLIENT[@]}" ||
                die "$tool failed on the ${mb} MB message"
            await_sessions pipe $((n + 1))
            check_delivery pipe "$n" "${SHA[${mb}MB]}" >/dev/null
            record memory "$tool" "${mb} MB message" "$("$PY" "$BENCH/analyse.py" rss "$WORK/time.txt")"
        done
    done
done

# ------------------------------------------------------------ 2. flights --

for mode in pipe nopipe; do
    variant=$([[ $mode == pipe ]] && echo pipelining || echo no-pipelining)
    for tool in "${TOOLS[@]}"; do
        say "flights: $tool, $variant"
        client_argv "$tool" "${PORT[f$mode]}"
        # The sink's view, client untraced, small and 1 MB messages.
        for m in small 1MB; do
            n=$(sessions "f$mode")
            "${CLIENT[@]}" <"${MSG[$m]}" || die "$tool failed ($variant, $m)"
            await_sessions "f$mode" $((n + 1))
            v=$variant
            [[ $m == small ]] || v=$variant-$m
            record flights-sink "$tool" "$v" "$(check_delivery "f$mode" "$n" "${SHA[$m]}")"
        done
        # The client's view: every write and read on its SMTP socket.
        n=$(sessions "f$mode")
        strace -f -qq -s 65536 -o "$WORK/flights-$tool-$mode.strace" \
            -e trace=socket,connect,close,read,write,readv,writev,recvfrom,recvmsg,sendto,sendmsg \
            "${CLIENT[@]}" <"${MSG[small]}" || die "$tool failed under strace ($variant)"
        await_sessions "f$mode" $((n + 1))
        check_delivery "f$mode" "$n" "${SHA[small]}" >/dev/null
        record flights-client "$tool" "$variant" \
            "$("$PY" "$BENCH/analyse.py" client "$WORK/flights-$tool-$mode.strace" "${PORT[f$mode]}")"
    done
done

# ----------------------------------------------------------- 3. syscalls --

for m in small 1MB; do
    for tool in "${TOOLS[@]}"; do
        say "syscalls: $tool, $m message"
        client_argv "$tool" "${PORT[pipe]}"
        n=$(sessions pipe)
        strace -f -c -o "$WORK/syscalls-$tool-$m.txt" "${CLIENT[@]}" <"${MSG[$m]}" ||
            die "$tool failed under strace -c"
        await_sessions pipe $((n + 1))
        check_delivery pipe "$n" "${SHA[$m]}" >/dev/null
        record syscalls "$tool" "$m" "$("$PY" "$BENCH/analyse.py" syscalls "$WORK/syscalls-$tool-$m.txt")"
    done
done

# ---------------------------------------------------------- 4. wall time --

say "load average before the wall-time runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# load average before the wall-time runs: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"
for tool in "${TOOLS[@]}"; do
    client_argv "$tool" "${PORT[pipe]}"
    cmd=$(printf '%q ' "${CLIENT[@]}")"< $(printf '%q' "${MSG[small]}")"
    if command -v hyperfine >/dev/null; then
        say "wall: $tool, hyperfine, $LOOP_N runs"
        n=$(sessions pipe)
        hyperfine --style basic --warmup 5 --runs "$LOOP_N" --export-json "$WORK/hf-$tool.json" \
            --command-name "$tool" "$cmd" >&2
        await_sessions pipe $((n + LOOP_N + 5))
        record wall-hyperfine "$tool" "small" "$("$PY" "$BENCH/analyse.py" hyperfine "$WORK/hf-$tool.json")"
        ok=$(count_delivered pipe "$n" "${SHA[small]}")
        record delivered "$tool" "hyperfine-$((LOOP_N + 5))" "{\"ok\": $ok}"
    fi
    say "wall: $tool, plain loop of $LOOP_N"
    n=$(sessions pipe)
    t0=$(date +%s%N)
    for _ in $(seq "$LOOP_N"); do
        "${CLIENT[@]}" <"${MSG[small]}" || die "$tool failed in the loop"
    done
    t1=$(date +%s%N)
    await_sessions pipe $((n + LOOP_N))
    total=$(((t1 - t0) / 1000))
    record wall-loop "$tool" "small-x$LOOP_N" \
        "{\"total_s\": $(printf '%d.%06d' $((total / 1000000)) $((total % 1000000))), \"per_msg_ms\": $((total / LOOP_N / 1000)).$(printf '%03d' $((total / LOOP_N % 1000)))}"
    ok=$(count_delivered pipe "$n" "${SHA[small]}")
    record delivered "$tool" "loop-$LOOP_N" "{\"ok\": $ok}"
    record pauses "$tool" "loop-$LOOP_N" "$("$PY" "$BENCH/analyse.py" gaps "$WORK/pipe.jsonl" "$n")"
done

# ---------------------------------------------------- 5. queue run --
# 1,000 messages queued while the relay is down, then one `smtpsend -q`:
# one session for all of them, against 1,000 msmtp processes (msmtpq is a
# shell wrapper that runs msmtp once per message, so that is its cost).

QN=${QUEUE_N:-1000}
QDIR=$WORK/queue
QCFG=$WORK/queue.toml
closed=$(closed_port)
qconf() { # PORT
    printf 'host = "127.0.0.1"\nport = %s\ntls = "none"\ndomain = "bench.example"\nqueue_dir = "%s"\ntimeout = 10\n' "$1" "$QDIR" >"$QCFG"
    chmod 600 "$QCFG"
}
qconf "$closed"
say "queue: spooling $QN messages with the relay down"
t0=$(date +%s%N)
for _ in $(seq "$QN"); do
    "$SMTPSEND" -C "$QCFG" -i -f a@example.org rcpt@example.org <"${MSG[small]}" 2>/dev/null ||
        die "smtpsend did not queue a message"
done
t1=$(date +%s%N)
spool_ms=$(((t1 - t0) / 1000000))
queued=$(find "$QDIR/msg" -name '*.env' | wc -l)
[[ $queued == "$QN" ]] || die "expected $QN queued messages, found $queued"
qconf "${PORT[pipe]}"
n=$(sessions pipe)
say "queue: one run over $QN messages"
t0=$(date +%s%N)
/usr/bin/time -v -o "$WORK/time-q.txt" "$SMTPSEND" -C "$QCFG" --queue-flush || die "queue run failed"
t1=$(date +%s%N)
run_ms=$(((t1 - t0) / 1000000))
await_sessions pipe $((n + 1))
left=$(find "$QDIR/msg" -name '*.env' | wc -l)
stats=$("$PY" - "$WORK/pipe.jsonl" "$n" "${SHA[small]}" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][int(sys.argv[2]):]
msgs = [m for s in rows for m in s["messages"]]
print(json.dumps({"sessions": len(rows), "messages": len(msgs),
                  "intact": sum(1 for m in msgs if m["sha256"] == sys.argv[3])}))
PYEOF
)
record queue-run smtpsend "$QN queued, one -q" "{\"run_ms\": $run_ms, \"spool_ms\": $spool_ms, \"left_in_queue\": $left, \"sink\": $stats, \"rss\": $("$PY" "$BENCH/analyse.py" rss "$WORK/time-q.txt")}"
say "queue: $QN msmtp processes, for comparison"
client_argv msmtp "${PORT[pipe]}"
n=$(sessions pipe)
t0=$(date +%s%N)
for _ in $(seq "$QN"); do
    "${CLIENT[@]}" <"${MSG[small]}" || die "msmtp failed"
done
t1=$(date +%s%N)
await_sessions pipe $((n + QN))
record queue-run msmtp "$QN processes" "{\"run_ms\": $(((t1 - t0) / 1000000)), \"delivered\": $(count_delivered pipe "$n" "${SHA[small]}")}"
echo "# queue run: smtpsend -q over $QN queued messages: ${run_ms} ms ($stats, $left left); $QN msmtp processes: $(((t1 - t0) / 1000000)) ms; spooling $QN with the relay down took ${spool_ms} ms" >>"$RESULTS"
say "queue run: smtpsend ${run_ms} ms ($stats), msmtp x$QN $(((t1 - t0) / 1000000)) ms"

echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"

# ------------------------------------------------------------- summary --

summary=$("$PY" "$BENCH/analyse.py" summary "$RESULTS")
{
    echo "#"
    echo "# summary"
    printf '# %s\n' "${summary//$'\n'/$'\n'# }"
} >>"$RESULTS"
echo
echo "$summary"
echo
say "raw records: $RESULTS"
