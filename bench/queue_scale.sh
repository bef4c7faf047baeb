#!/usr/bin/env bash
# Issue 15 item 5: does a backlog slow a new submission?
#
# With the relay down (a closed port), queues N messages one invocation
# at a time and reports: the files opened and syscalls made by ONE
# submission with 0, 300 and N already queued (strace -c -f), the
# queueing rate of the first and the last thousand, the time of -bp over
# all of them, and of one queue run delivering all of them to a sink
# (bench/sink.py) over one connection.
#
# Usage: bench/queue_scale.sh [N]   (N defaults to 10000; needs strace,
# python3, and a release build: cargo build --release)
set -euo pipefail
N=${1:-10000}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$HERE/../target/release/smtpsend}
WORK=$(mktemp -d)
SINK_PID=
cleanup() {
    [[ -n $SINK_PID ]] && kill "$SINK_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export HOME=$WORK/home XDG_STATE_HOME=$WORK/state XDG_CONFIG_HOME=$WORK/xdg TZ=UTC
# No detached retrier: it would run the queue in the middle of the measurement.
export SMTPSEND_NO_RETRIER=1
mkdir -p "$HOME"
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
config() { # PORT
    printf 'queue_dir = "%s"\nhost = "127.0.0.1"\nport = %s\ntls = "none"\ntimeout = 5\ndomain = "client.example"\n' \
        "$WORK/queue" "$1" >"$WORK/c.toml"
    chmod 600 "$WORK/c.toml"
}
config "$closed"
MSG=$'From: a@example.org\nSubject: bench\n\nbody\n'
submit() { printf '%s' "$MSG" | "$BIN" -C "$WORK/c.toml" -i b@example.org 2>/dev/null; }
queued() { find "$WORK/queue/msg" -name '*.env' 2>/dev/null | wc -l; }
now() { date +%s.%N; }

one_submission() { # LABEL
    local out=$WORK/strace.$1
    printf '%s' "$MSG" | strace -f -c -o "$out" "$BIN" -C "$WORK/c.toml" -i b@example.org 2>/dev/null || true
    local opens total
    opens=$(awk '$NF=="openat"{print $4}' "$out")
    total=$(awk '$NF=="total"{print $4}' "$out")
    printf '%-28s %8s queued: %5s openat, %6s syscalls\n' "one submission with" "$(queued)" "${opens:-0}" "$total"
}

one_submission empty
t0=$(now)
for ((i = 1; i < N; i++)); do
    submit || true
    if ((i == 999)); then t1=$(now); fi
    if ((i == 300)); then one_submission three-hundred; fi
    if ((i == N - 1000)); then t2=$(now); fi
done
t3=$(now)
one_submission full
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
    printf "queueing rate, first 1000:   %6.1f messages/s\n", 1000 / (b - a)
    printf "queueing rate, last 1000:    %6.1f messages/s\n", 1000 / (d - c)
}'
s=$(now)
"$BIN" -C "$WORK/c.toml" -bp >/dev/null
e=$(now)
awk -v a="$s" -v b="$e" -v n="$(queued)" 'BEGIN { printf "-bp over %d:               %6.2f s\n", n, b - a }'

# One queue run delivering everything to a sink, over one connection.
python3 "$HERE/sink.py" --port-file "$WORK/sink.port" --log "$WORK/sink.jsonl" &
SINK_PID=$!
for _ in $(seq 100); do [[ -s $WORK/sink.port ]] && break; sleep 0.1; done
config "$(cat "$WORK/sink.port")"
s=$(now)
"$BIN" -C "$WORK/c.toml" --queue-flush 2>/dev/null || true
e=$(now)
awk -v a="$s" -v b="$e" -v left="$(queued)" 'BEGIN { printf "--queue-flush (sink):         %6.2f s, %d left queued\n", b - a, left }'
