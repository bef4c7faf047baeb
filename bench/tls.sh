#!/usr/bin/env bash
# Issue 15's six figures, smtpsend and msmtp side by side, in one run:
#
#   rtt    round trips and wall time behind a 20 ms one-way delay proxy:
#          plain and STARTTLS+AUTH, with CHUNKING offered and without
#   tls    a 2 KB send on loopback and behind the proxy (hyperfine), plain
#          and STARTTLS+AUTH, and a profile of the STARTTLS+AUTH send
#          (strace -c, strace -T, trust-store reads, perf record)
#   queue  a queue run of QUEUE_N (1,000) messages over STARTTLS+AUTH
#          against QUEUE_N msmtp invocations with the same security
#   rcpts  -t with 6,000 and 60,000 recipients: time and peak memory
#   spool  SPOOL_N (10,000) messages queued with the relay down: the rate
#          of each thousand, the syscalls of one submission with 0 and
#          with SPOOL_N queued, -bp, then one queue run over all of them
#   instr  instructions per small send (valgrind --tool=callgrind), plain
#          and STARTTLS+AUTH
#
#   bench/tls.sh [SECTION...]     all six when none is named; as root on
#                                 Debian 12 (installs msmtp, strace, time,
#                                 hyperfine, valgrind, openssl if missing)
#
# Knobs: RTT_RUNS (5), HF_RUNS (100), HF_PROXY_RUNS (20), QUEUE_N (1000),
# SPOOL_N (10000), DELAY_MS (20), SINK_LIFETIME (3600 s), KEEP_WORK=1,
# RESULTS_TAG (a suffix for the results file), SMTPSEND_BIN (measure this
# binary instead of building the tree's), CARGO_TARGET_DIR. Not part
# of CI: a full run takes about ten minutes on an idle 2-CPU machine.
#
# Everything talks to 127.0.0.1 only. The certificate authority is made
# here, in the scratch directory. Raw records go to
# bench/results/<UTC date>-issue15<RESULTS_TAG>.txt, profiles next to it
# in a directory of the same name; the summary is printed at the end.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RTT_RUNS=${RTT_RUNS:-5}
HF_RUNS=${HF_RUNS:-100}
HF_PROXY_RUNS=${HF_PROXY_RUNS:-20}
QUEUE_N=${QUEUE_N:-1000}
SPOOL_N=${SPOOL_N:-10000}
SINK_LIFETIME=${SINK_LIFETIME:-3600}
RESULTS_DIR=$BENCH/results
RESULTS=$RESULTS_DIR/$(date -u +%F)-issue15${RESULTS_TAG:-}.txt
PROFILES=${RESULTS%.txt}
PY=python3

# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

WORK=$(mktemp -d /tmp/smtpsend-bench.XXXXXX)
trap cleanup EXIT
SECTIONS=("$@")
((${#SECTIONS[@]})) || SECTIONS=(rtt tls queue rcpts spool instr)
wants() { [[ " ${SECTIONS[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- setup --

install_deps msmtp:/usr/bin/msmtp strace:/usr/bin/strace time:/usr/bin/time \
    hyperfine:/usr/bin/hyperfine python3:/usr/bin/python3 valgrind:/usr/bin/valgrind \
    openssl:/usr/bin/openssl
# A copy: a rebuild during the run must not change the binary under test.
SMTPSEND=$WORK/smtpsend
if [[ -n ${SMTPSEND_BIN:-} ]]; then
    cp "$SMTPSEND_BIN" "$SMTPSEND"
else
    say "building smtpsend (release)"
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    cp "$CARGO_TARGET_DIR/release/smtpsend" "$SMTPSEND"
fi

export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config LC_ALL=C
# smtpsend's password for AUTH (no command to run per send); msmtp's is in
# its configuration file.
export SMTPSEND_PASSWORD=bench-secret
# No detached queue retrier: it would deliver behind the benchmarks' backs.
export SMTPSEND_NO_RETRIER=1
# The trust store as a stock Debian machine has it: OpenSSL's own defaults,
# not a bundle or directory some tool's environment points at (each changes
# how much of the store a TLS client parses).
unset SSL_CERT_FILE SSL_CERT_DIR
mkdir -p "$HOME" "$RESULTS_DIR" "$PROFILES"
results_header "bench/tls.sh ${SECTIONS[*]}" >"$RESULTS"

info=$("$PY" "$BENCH/genmsg.py" 2000 "$WORK/small.eml")
MSG=$WORK/small.eml SHA=$(sha_of "$info")
record message - small "$info"

say "a private CA and a certificate for 127.0.0.1"
PKI=$WORK/pki
mkdir -p "$PKI"
(
    cd "$PKI"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 2 -subj "/CN=smtpsend bench CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
        -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
)

say "starting sinks and delay proxies on 127.0.0.1"
TLSOPT=(--starttls "$PKI/server.pem" "$PKI/server.key" --auth)
start_sink plain --pipelining
start_sink plainchunk --pipelining --chunking
start_sink tls --pipelining "${TLSOPT[@]}"
start_sink tlschunk --pipelining --chunking "${TLSOPT[@]}"
for s in plain plainchunk tls tlschunk; do start_proxy "p$s" "$s"; done

# msmtp reads its security settings from a file (mode 0600, as it demands).
msmtp_conf() { # FILE tls|plain
    {
        echo "account bench"
        echo "host 127.0.0.1"
        echo "from a@example.org"
        echo "domain bench.example"
        if [[ $2 == tls ]]; then
            printf 'tls on\ntls_starttls on\ntls_trust_file %s\nauth plain\nuser bench\npassword %s\n' \
                "$PKI/ca.pem" "$SMTPSEND_PASSWORD"
        else
            printf 'tls off\nauth off\n'
        fi
        echo "account default : bench"
    } >"$1"
    chmod 600 "$1"
}
msmtp_conf "$WORK/msmtp-plain.conf" plain
msmtp_conf "$WORK/msmtp-tls.conf" tls

# The client's argv, in CLIENT: the same envelope, EHLO name and message
# for both tools; plain, or STARTTLS (verifying the certificate against
# the private CA) with AUTH PLAIN.
client_argv() { # TOOL plain|tls PORT [extra recipients-side args...]
    local tool=$1 sec=$2 port=$3
    shift 3
    local rest=("$@")
    ((${#rest[@]})) || rest=(rcpt@example.org)
    case $tool-$sec in
    smtpsend-plain) CLIENT=("$SMTPSEND" --host 127.0.0.1 --port "$port" --tls none
        --domain bench.example -i -f a@example.org "${rest[@]}") ;;
    smtpsend-tls) CLIENT=("$SMTPSEND" --host 127.0.0.1 --port "$port" --tls starttls
        --tls-ca-file "$PKI/ca.pem" --auth PLAIN --user bench
        --domain bench.example -i -f a@example.org "${rest[@]}") ;;
    msmtp-plain | msmtp-tls) CLIENT=(msmtp -C "$WORK/msmtp-$sec.conf" --port="$port" "${rest[@]}") ;;
    *) die "unknown client $tool $sec" ;;
    esac
}

TOOLS=(smtpsend msmtp)

# ------------------------------------------------------ 1. round trips --

if wants rtt; then
    for sec in plain tls; do
        for offer in chunking data; do
            sink=$sec
            [[ $offer == chunking ]] && sink=${sec}chunk
            for tool in "${TOOLS[@]}"; do
                say "round trips: $tool, $sec, CHUNKING ${offer/data/not offered}"
                client_argv "$tool" "$sec" "${PORT[p$sink]}"
                n=$(sessions "p$sink") m=$(sessions "$sink")
                walls=()
                for _ in $(seq "$RTT_RUNS"); do
                    t0=$(date +%s%N)
                    "${CLIENT[@]}" <"$MSG" || die "$tool failed ($sec, $offer)"
                    t1=$(date +%s%N)
                    walls+=($(((t1 - t0) / 1000)))
                done
                await_sessions "p$sink" $((n + RTT_RUNS))
                await_sessions "$sink" $((m + RTT_RUNS))
                ok=$(count_delivered "$sink" "$m" "$SHA")
                ((ok == RTT_RUNS)) || die "$tool: $ok of $RTT_RUNS messages arrived intact ($sec, $offer)"
                record rtt "$tool" "$sec-$offer" "$("$PY" "$BENCH/analyse.py" proxy \
                    "$WORK/p$sink.jsonl" "$n" "$WORK/$sink.jsonl" "$m" "${walls[@]}")"
            done
        done
    done
fi

# ------------------------------------------- 2. a 2 KB send, and where the time goes --

if wants tls; then
    say "load average before the timed runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# load average before the timed runs: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"
    for sec in plain tls; do
        for where in loopback proxy; do
            sink=${sec}chunk runs=$HF_RUNS warm=5
            [[ $where == proxy ]] && sink=p${sec}chunk runs=$HF_PROXY_RUNS warm=2
            for tool in "${TOOLS[@]}"; do
                say "wall: $tool, $sec, $where, hyperfine $runs runs"
                client_argv "$tool" "$sec" "${PORT[$sink]}"
                cmd=$(printf '%q ' "${CLIENT[@]}")"< $(printf '%q' "$MSG")"
                m=$(sessions "${sec}chunk")
                hyperfine --style basic --warmup "$warm" --runs "$runs" \
                    --export-json "$WORK/hf.json" --command-name "$tool" "$cmd" >&2
                await_sessions "${sec}chunk" $((m + runs + warm))
                ok=$(count_delivered "${sec}chunk" "$m" "$SHA")
                ((ok == runs + warm)) || die "$tool: $ok of $((runs + warm)) arrived intact"
                record wall "$tool" "$sec-$where" "$("$PY" "$BENCH/analyse.py" hyperfine "$WORK/hf.json")"
            done
        done
    done
    say "profile: the STARTTLS+AUTH send"
    for tool in "${TOOLS[@]}"; do
        client_argv "$tool" tls "${PORT[tlschunk]}"
        strace -f -c -o "$PROFILES/strace-c-$tool-tls.txt" "${CLIENT[@]}" <"$MSG"
        record syscalls "$tool" tls "$("$PY" "$BENCH/analyse.py" syscalls "$PROFILES/strace-c-$tool-tls.txt")"
        strace -f -tt -T -yy -o "$WORK/strace-T-$tool.txt" "${CLIENT[@]}" <"$MSG"
        "$PY" "$BENCH/analyse.py" slow "$WORK/strace-T-$tool.txt" >"$PROFILES/strace-T-$tool-tls.txt"
        record trust-store "$tool" tls "$("$PY" "$BENCH/analyse.py" certreads "$WORK/strace-T-$tool.txt")"
        record phases "$tool" tls "$("$PY" "$BENCH/analyse.py" phases "$WORK/strace-T-$tool.txt")"
    done
    if perf record -o "$WORK/perf.data" -F 4999 -g -- true 2>/dev/null; then
        client_argv smtpsend tls "${PORT[tlschunk]}"
        # Twenty sends, for enough samples of a 60 ms process.
        perf record -q -o "$WORK/perf.data" -F 4999 -g -- bash -c \
            "for i in \$(seq 20); do $(printf '%q ' "${CLIENT[@]}") < $(printf '%q' "$MSG"); done" 2>/dev/null
        perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -40 >"$PROFILES/perf-smtpsend-tls.txt" || true
        perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -15 >"$PROFILES/perf-dso-smtpsend-tls.txt" || true
    else
        echo "# perf record does not work here: no perf profile" >>"$RESULTS"
    fi
fi

# -------------------------------------- 3. a queue run over STARTTLS+AUTH --

# A configuration for the queue benchmarks: the relay on PORT (plain or
# STARTTLS+AUTH), a queue directory of its own.
qconf() { # FILE QUEUE_DIR plain|tls PORT
    {
        printf 'host = "127.0.0.1"\nport = %s\ndomain = "bench.example"\nqueue_dir = "%s"\ntimeout = 30\n' "$4" "$2"
        if [[ $3 == tls ]]; then
            printf 'tls = "starttls"\ntls_ca_file = "%s"\nauth = "PLAIN"\nuser = "bench"\npassword = "%s"\n' \
                "$PKI/ca.pem" "$SMTPSEND_PASSWORD"
        else
            printf 'tls = "none"\n'
        fi
    } >"$1"
    chmod 600 "$1"
}

# Queues N messages with the relay down, timing each thousand; records
# the rates as bench "spool", variant LABEL.
spool_n() { # CONFIG N LABEL
    local cfg=$1 n=$2 label=$3 done_=0 rates=() t0 t1 batch
    while ((done_ < n)); do
        batch=$((n - done_ < 1000 ? n - done_ : 1000))
        t0=$(date +%s%N)
        for _ in $(seq "$batch"); do
            "$SMTPSEND" -C "$cfg" -i -f a@example.org rcpt@example.org <"$MSG" 2>/dev/null ||
                die "smtpsend did not queue a message"
        done
        t1=$(date +%s%N)
        rates+=("$(((t1 - t0) / 1000))")
        done_=$((done_ + batch))
        say "spool: $done_ of $n queued; last batch $((batch * 1000000000 / (t1 - t0))) msg/s"
    done
    record spool smtpsend "$label" "$("$PY" "$BENCH/analyse.py" rates "$n" "${rates[@]}")"
}

# One --queue-flush over everything in the queue of CONFIG, to SINK.
queue_run() { # CONFIG QUEUE_DIR SINK N LABEL
    local m t0 t1 left
    m=$(sessions "$3")
    t0=$(date +%s%N)
    /usr/bin/time -v -o "$WORK/time-q.txt" "$SMTPSEND" -C "$1" --queue-flush 2>"$WORK/q.err" ||
        die "queue run failed: $(tail -3 "$WORK/q.err")"
    t1=$(date +%s%N)
    await_sessions "$3" $((m + 1))
    sleep 0.5
    left=$(find "$2/msg" -name '*.env' | wc -l)
    record queue-run smtpsend "$5" "{\"n\": $4, \"run_ms\": $(((t1 - t0) / 1000000)), \"left_in_queue\": $left, \"sessions\": $(($(sessions "$3") - m)), \"delivered_intact\": $(count_delivered "$3" "$m" "$SHA"), \"rss\": $("$PY" "$BENCH/analyse.py" rss "$WORK/time-q.txt")}"
}

if wants queue; then
    QD=$WORK/queue-tls CFG=$WORK/queue-tls.toml
    qconf "$CFG" "$QD" tls "$(closed_port)"
    say "queue: spooling $QUEUE_N messages with the relay down"
    spool_n "$CFG" "$QUEUE_N" "$QUEUE_N for the STARTTLS+AUTH queue run"
    qconf "$CFG" "$QD" tls "${PORT[tlschunk]}"
    say "queue: one STARTTLS+AUTH run over $QUEUE_N messages"
    queue_run "$CFG" "$QD" tlschunk "$QUEUE_N" "tls, $QUEUE_N queued, one --queue-flush"
    say "queue: $QUEUE_N msmtp processes with STARTTLS+AUTH"
    client_argv msmtp tls "${PORT[tlschunk]}"
    m=$(sessions tlschunk)
    t0=$(date +%s%N)
    for _ in $(seq "$QUEUE_N"); do "${CLIENT[@]}" <"$MSG" || die "msmtp failed"; done
    t1=$(date +%s%N)
    await_sessions tlschunk $((m + QUEUE_N))
    record queue-run msmtp "tls, $QUEUE_N processes" "{\"n\": $QUEUE_N, \"run_ms\": $(((t1 - t0) / 1000000)), \"delivered_intact\": $(count_delivered tlschunk "$m" "$SHA")}"
fi

# ------------------------------------------------- 4. -t with 60,000 recipients --

if wants rcpts; then
    for n in 6000 60000; do
        "$PY" - "$n" >"$WORK/rcpts-$n.eml" <<'PYEOF'
import sys
n = int(sys.argv[1])
print("From: Bench <a@example.org>\nSubject: many recipients\nDate: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <rcpts@example.org>")
# Short addresses, 30 to a field, so 60,000 fit in the 1 MiB header limit;
# every tenth one a repeat in another case, which the de-duplication drops.
for i in range(0, n, 30):
    print("To: " + ",".join(f"U{j - 1}@X.ORG" if j % 10 == 9 else f"u{j}@x.org" for j in range(i, min(n, i + 30))))
print("\nbody")
PYEOF
        for tool in "${TOOLS[@]}"; do
            say "-t: $tool, $n recipients"
            client_argv "$tool" plain "${PORT[plain]}" -t
            m=$(sessions plain)
            if timeout 300 /usr/bin/time -v -o "$WORK/time-t.txt" "${CLIENT[@]}" <"$WORK/rcpts-$n.eml" 2>"$WORK/t.err"; then
                await_sessions plain $((m + 1))
                r=$("$PY" -c 'import json,sys; s=[json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2])]; print(sum(m["rcpts"] for m in s["messages"]))' "$WORK/plain.jsonl" "$m")
                record rcpts "$tool" "$n in To" "{\"rcpts_sent\": $r, \"rss\": $("$PY" "$BENCH/analyse.py" rss "$WORK/time-t.txt")}"
            else
                record rcpts "$tool" "$n in To" "{\"failed\": \"$(head -c 200 "$WORK/t.err" | tr -d '"\\\n')\"}"
            fi
        done
        # The same work counted in instructions, which the load does not
        # change: --dry-run reads the header block, extracts and
        # de-duplicates the recipients, and prints the plan.
        say "-t: smtpsend --dry-run under callgrind, $n recipients"
        rm -f "$WORK"/cg.out*
        valgrind -q --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$SMTPSEND" --dry-run -t -i \
            --host 127.0.0.1 --tls none --domain bench.example <"$WORK/rcpts-$n.eml" >/dev/null 2>&1 ||
            die "smtpsend --dry-run -t failed under valgrind"
        record instructions smtpsend "--dry-run -t, $n recipients" "$("$PY" "$BENCH/analyse.py" callgrind "$WORK/cg.out")"
    done
fi

# ------------------------------------- 5. queueing 10,000 with the relay down --

# One more submission with the relay down, under strace -c: the count of
# syscalls says whether its cost depends on the backlog.
submit_traced() { # CONFIG LABEL
    strace -f -c -o "$WORK/submit-strace.txt" "$SMTPSEND" -C "$1" -i -f a@example.org \
        rcpt@example.org <"$MSG" 2>/dev/null || die "smtpsend did not queue a message"
    record submission smtpsend "$2" "$("$PY" "$BENCH/analyse.py" syscalls "$WORK/submit-strace.txt")"
}

if wants spool; then
    QD=$WORK/queue-plain CFG=$WORK/queue-plain.toml
    qconf "$CFG" "$QD" plain "$(closed_port)"
    submit_traced "$CFG" "relay down, 0 queued"
    say "spool: $SPOOL_N messages with the relay down"
    spool_n "$CFG" "$SPOOL_N" "$SPOOL_N queued, relay down"
    submit_traced "$CFG" "relay down, $((SPOOL_N + 1)) queued"
    /usr/bin/time -v -o "$WORK/time-bp.txt" "$SMTPSEND" -C "$CFG" -bp >"$WORK/bp.txt"
    record list smtpsend "-bp over $SPOOL_N" "{\"lines\": $(wc -l <"$WORK/bp.txt"), \"rss\": $("$PY" "$BENCH/analyse.py" rss "$WORK/time-bp.txt")}"
    qconf "$CFG" "$QD" plain "${PORT[plainchunk]}"
    say "spool: one queue run over $SPOOL_N"
    queue_run "$CFG" "$QD" plainchunk "$((SPOOL_N + 2))" "plain, $((SPOOL_N + 2)) queued, one --queue-flush"
fi

# ------------------------------------- 6. instructions per small send --

if wants instr; then
    for sec in plain tls; do
        for tool in "${TOOLS[@]}"; do
            say "instructions: $tool, $sec (callgrind)"
            client_argv "$tool" "$sec" "${PORT[${sec}chunk]}"
            rm -f "$WORK"/cg.out*
            valgrind -q --tool=callgrind --callgrind-out-file="$WORK/cg.out" "${CLIENT[@]}" <"$MSG" 2>"$WORK/vg.err" ||
                die "$tool under valgrind: $(tail -3 "$WORK/vg.err")"
            record instructions "$tool" "small send, $sec" "$("$PY" "$BENCH/analyse.py" callgrind "$WORK/cg.out")"
            if [[ $tool == smtpsend && $sec == tls ]]; then
                callgrind_annotate --inclusive=yes "$WORK/cg.out" 2>/dev/null | head -60 >"$PROFILES/callgrind-smtpsend-tls.txt" || true
            fi
        done
    done
fi

echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"
summary=$("$PY" "$BENCH/analyse.py" issue15 "$RESULTS")
{
    echo "#"
    echo "# summary"
    printf '# %s\n' "${summary//$'\n'/$'\n'# }"
} >>"$RESULTS"
echo
echo "$summary"
echo
say "raw records: $RESULTS; profiles in $PROFILES/"
