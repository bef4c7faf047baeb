#!/usr/bin/env bash
# The large chaos run (tests/chaos.rs): thousands of messages through a
# relay that refuses, stalls, drops and dies, with submitters and queue
# runners killed at random; nothing may be lost or misreported.
#
#   bench/chaos.sh [MESSAGES]     default 5000; CHAOS_SEED=N to replay,
#                                 CHAOS_PARALLEL (3) submitters at once
#
# Prints the seed and the figures; exits non-zero on any lost,
# misreported or unexplained duplicate message.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CHAOS_MESSAGES=${1:-${CHAOS_MESSAGES:-5000}}
exec cargo test --test chaos -- --ignored --nocapture chaos_large
