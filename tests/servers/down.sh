#!/usr/bin/env bash
# down.sh STATE_DIR — stop every server that up.sh STATE_DIR started.
#
# Only the process groups recorded in STATE_DIR/pids are signalled (each
# server was started with setsid, so its group holds it and all its
# children). A recorded group is skipped when its leader's pid now belongs to
# a different process (start time differs): the pid was reused. SIGTERM
# first, SIGKILL for whatever is still there after a grace period, and it
# returns only when no live (non-zombie) member of any group is left.
# Idempotent: a second run finds nothing to do.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
STATE=$1
PIDS=$STATE/pids
TERM_GRACE=${SERVERS_STOP_GRACE:-10}
[ -s "$PIDS" ] || exit 0

log() { printf 'down.sh: %s\n' "$*" >&2; }

# Fields of /proc/PID/stat after the ")" that ends the command name:
# 1 state, 2 ppid, 3 pgrp, ... 20 starttime.
stat_fields() {
    local line
    read -r line 2>/dev/null <"/proc/$1/stat" || return 1
    echo "${line##*) }"
}

# Live (not zombie) members of process group $1.
live_members() {
    local f line rest out=""
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        rest=${line##*) }
        set -- $rest
        if [ "$3" = "$pg" ] && [ "$1" != Z ] && [ "$1" != X ]; then
            out="$out ${f//[!0-9]/}"
        fi
    done
    echo "$out"
}

my_pgid=$(set -- $(stat_fields $$); echo "$3")
groups=()
while read -r name pgid start; do
    [ -n "${pgid:-}" ] || continue
    [ "$pgid" = "$my_pgid" ] && continue
    if fields=$(stat_fields "$pgid"); then
        set -- $fields
        if [ "${20}" != "$start" ]; then
            continue # pid reused by someone else: not ours
        fi
    fi
    # Leader alive and ours, or gone (its group id cannot have been reused
    # while members remain): signal the group either way.
    groups+=("$name:$pgid")
done <"$PIDS"

signal_all() {
    local g
    for g in "${groups[@]}"; do
        kill "-$1" -- "-${g#*:}" 2>/dev/null
    done
}

# Waits up to $1 seconds for every group to have no live member.
wait_all() {
    local deadline=$(( $(date +%s%N) + $1 * 1000000000 )) g pg left
    while :; do
        left=""
        for g in "${groups[@]}"; do
            pg=${g#*:}
            [ -n "$(live_members)" ] && left="$left ${g%%:*}"
        done
        [ -z "$left" ] && return 0
        [ "$(date +%s%N)" -ge "$deadline" ] && { echo "$left"; return 1; }
        sleep 0.1
    done
}

if [ ${#groups[@]} -gt 0 ]; then
    signal_all TERM
    if ! left=$(wait_all "$TERM_GRACE"); then
        log "still running after SIGTERM + ${TERM_GRACE} s:$left; sending SIGKILL"
        signal_all KILL
        if ! left=$(wait_all 5); then
            log "could not stop:$left"
            exit 1
        fi
    fi
fi
mv -f "$PIDS" "$PIDS.stopped"
exit 0
