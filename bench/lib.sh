# Shared by bench/run.sh and bench/tls.sh (sourced, not run): scratch
# directory and cleanup, dependencies, sinks and proxies on 127.0.0.1,
# the raw-record file, delivery checks. Expects BENCH, ROOT, PY, WORK,
# RESULTS and SINK_LIFETIME to be set by the script that sources it.
# shellcheck shell=bash

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Every server a benchmark starts, stopped on exit (by PID).
SINK_PIDS=()
cleanup() {
    local p
    for p in "${SINK_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        say "scratch kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}

# Installs what is missing: "package:file" pairs.
install_deps() {
    local missing=() pair pkg file
    for pair in "$@"; do
        pkg=${pair%%:*} file=${pair#*:}
        [[ -x $file ]] || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; run as root or install them"
        say "installing ${missing[*]}"
        # msmtp alone, not msmtp-mta: smtpsend may own /usr/sbin/sendmail.
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
            { apt-get update && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends "${missing[@]}"; }
    fi
    command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
}

# Starts a helper under `timeout` and waits for the port it writes.
declare -A PORT
start_helper() { # NAME SCRIPT [options...]; sets PORT[NAME]
    local name=$1 script=$2
    shift 2
    : >"$WORK/$name.jsonl"
    timeout "$SINK_LIFETIME" "$PY" "$BENCH/$script" --port-file "$WORK/$name.port" \
        --log "$WORK/$name.jsonl" "$@" &
    SINK_PIDS+=($!)
    for _ in $(seq 100); do
        [[ -s $WORK/$name.port ]] && break
        sleep 0.1
    done
    [[ -s $WORK/$name.port ]] || die "$script $name did not start"
    PORT[$name]=$(cat "$WORK/$name.port")
}
# The sink is plain asyncio (see sink.py for why not aiosmtpd).
start_sink() { start_helper "$1" sink.py "${@:2}"; }
# A 20 ms (DELAY_MS) one-way delay in front of sink TARGET.
start_proxy() { start_helper "$1" delay_proxy.py --target "${PORT[$2]}" --delay-ms "${DELAY_MS:-20}"; }

# How many sessions a sink (or proxy) has logged so far.
sessions() { wc -l <"$WORK/$1.jsonl"; }

# Waits until NAME has logged N sessions (it logs when the client hangs
# up, a moment after the client has exited).
await_sessions() { # NAME N
    for _ in $(seq 400); do
        (($(sessions "$1") >= $2)) && return 0
        sleep 0.05
    done
    die "$1 logged $(sessions "$1") sessions, expected $2"
}

# Raw record: bench, tool, variant, JSON.
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# Checks the session a sink logged after the first SKIP: exactly one
# message whose wire SHA-256 is the one genmsg.py predicted.
check_delivery() { # SINK SKIP EXPECTED_SHA
    local got
    got=$("$PY" "$BENCH/analyse.py" sink "$WORK/$1.jsonl" "$2")
    "$PY" - "$got" "$3" <<'PYEOF' || die "sink $1 session $2: wrong message: $got"
import json, sys
m = json.loads(sys.argv[1])["messages"]
sys.exit(0 if len(m) == 1 and m[0]["sha256"] == sys.argv[2] else 1)
PYEOF
    printf '%s' "$got"
}

# Counts the messages with SHA in the sessions after the first SKIP.
count_delivered() { # SINK SKIP SHA
    "$PY" - "$WORK/$1.jsonl" "$2" "$3" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][int(sys.argv[2]):]
print(sum(1 for s in rows for m in s["messages"] if m["sha256"] == sys.argv[3]))
PYEOF
}

sha_of() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["wire_sha256"])' "$1"; }

# Milliseconds since the epoch, for timing loops.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# A TCP port on 127.0.0.1 that nothing listens on (a relay that is down).
closed_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The head of a results file: what ran, on what, under which load.
results_header() { # SCRIPT
    echo "# smtpsend vs msmtp, $1, $(date -u '+%F %T') UTC"
    echo "# commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (src modified)')"
    echo "# $("$SMTPSEND" --version 2>&1 | head -1); $(msmtp --version | head -1); $(strace -V | head -1); $(hyperfine --version 2>/dev/null || echo 'no hyperfine')"
    echo "# kernel $(uname -r); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "# memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# /tmp (smtpsend spools the message there): $(df -T /tmp | awk 'NR==2 {print $2}')"
    echo "# records: bench<TAB>tool<TAB>variant<TAB>JSON"
}
