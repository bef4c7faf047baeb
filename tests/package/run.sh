#!/usr/bin/env bash
# tests/package/run.sh [DEB] — the Debian package, proven the way a user
# meets it: built, linted, installed with apt over the machine's MTA, and
# used by the real programs that call /usr/sbin/sendmail.
#
#   1. `cargo deb` (unless DEB is given), then lintian: no errors.
#   2. A throwaway copy of this machine: a mount + pid namespace in which
#      /etc, /usr, /var, /run, /root and /home are overlays whose upper
#      layers live in a tmpfs. Nothing done in there reaches the host, and
#      every process started there dies with the namespace.
#      Why not `dpkg -i` on the host: Debian's MTAs conflict with each
#      other, and the interop tests need the host's Postfix. Why not a
#      chroot: the callers (cron, mutt, PHP, sudo, logwatch, git) would all
#      have to be installed into it; the overlay has them already.
#   3. In there, `apt-get install --no-download ./smtpsend.deb`: apt
#      removes Postfix (Conflicts/Replaces: mail-transport-agent) and runs
#      our maintainer scripts. Checks: the names, the spool's owner and
#      mode, the conffile.
#   4. /etc/smtpsend.toml points at a capturing server on 127.0.0.1
#      (capture.py, aiosmtpd); bsd-mailx, s-nail, mutt, git send-email,
#      PHP's mail() as www-data, sudo's mail, logwatch and the real cron
#      daemon (MAILTO through [aliases]) send through /usr/sbin/sendmail.
#      assert_msg.py checks each envelope, the qualification of bare names,
#      Bcc removed, 8-bit text and dot lines intact; then /etc/mailname and
#      /etc/aliases standing in for a configuration without them.
#   5. The queue drains itself: relay down, send, relay up, and wait with
#      no command run: the detached retrier the submission left, with the
#      package's /etc/cron.d/smtpsend (this machine has no systemd) running
#      `smtpsend -q` as the fallback.
#   6. dpkg -r / -P: queued mail is kept and removal says so; purging an
#      empty queue leaves none of the package's files.
#
# Prints one "package: N passed, M failed" line; exits non-zero on any
# failure. Runs as root; needs cargo-deb, lintian, python3 with aiosmtpd,
# cron, bsd-mailx, s-nail, mutt, git-email, php-cli, logwatch and sudo
# (.ci/install-deps installs them). Bounded: PACKAGE_TEST_SECONDS (900).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
LIMIT=${PACKAGE_TEST_SECONDS:-900}

log() { printf 'package: %s\n' "$*" >&2; }

if [ "${1:-}" != --inside ]; then
    [ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
    deb=${1:-}
    if [ -z "$deb" ]; then
        log "building: cargo deb"
        # cargo deb's output goes to our standard error as it comes (not
        # through `tee /dev/stderr`, which reopens a log file and truncates
        # it); its last line is the package's path.
        out=$(mktemp)
        (cd "$ROOT" && cargo deb 2>&1) | while IFS= read -r line; do
            printf '%s\n' "$line" >&2
            printf '%s\n' "$line" >"$out"
        done
        deb=$(cat "$out")
        rm -f "$out"
    fi
    deb=$(realpath "$deb")
    [ -f "$deb" ] || { log "no package at $deb"; exit 1; }
    log "lintian $deb"
    # Errors fail; warnings and notes are shown (overrides carry reasons).
    lintian --fail-on error --display-info --suppress-tags no-md5sums-control-file "$deb"
    work=$(mktemp -d /tmp/smtpsend-package.XXXXXX)
    chmod 755 "$work"
    trap 'rm -rf "$work"' EXIT
    # --kill-child: if we are killed, so is the namespace's pid 1, and with
    # it everything started inside.
    rc=0
    timeout --kill-after=10 "$LIMIT" \
        unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
        "$HERE/run.sh" --inside "$deb" "$work" || rc=$?
    exit "$rc"
fi

# ---------------------------------------------------------------------------
# Inside the namespace: pid 1 is this script.
deb=$2
work=$3
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'package: ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'package: FAIL %s\n' "$*"; }
skipped=0
skip() { skipped=$((skipped + 1)); printf 'package: SKIP %s\n' "$*"; }
check() { # check NAME COMMAND...: one result line for a command
    local name=$1
    shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}

mount -t tmpfs -o mode=0755 tmpfs "$work"
for d in /etc /usr /var /run /root /home; do
    mkdir -p "$work/ov$d/up" "$work/ov$d/wk"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$work/ov$d/up,workdir=$work/ov$d/wk" "$d"
done
# What a container's /run may lack; no daemon may be started by scripts.
mkdir -p /run/lock /run/sudo
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

# --- install ----------------------------------------------------------------
log "apt-get install $deb (in the throwaway overlay)"
export DEBIAN_FRONTEND=noninteractive
if (cd "$(dirname "$deb")" && apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confold "./$(basename "$deb")") >"$work/apt-install.log" 2>&1; then
    ok "apt-get install replaces the machine's MTA"
else
    bad "apt-get install"
    cat "$work/apt-install.log"
    echo "package: $passed passed, $failed failed"
    exit 1
fi
status() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true; }
check "postfix removed by Conflicts: mail-transport-agent" \
    test "$(status postfix)" != "install ok installed"
check "smtpsend installed" test "$(status smtpsend)" = "install ok installed"
for name in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases; do
    check "$name is smtpsend" test "$(readlink -f "$name")" = /usr/bin/smtpsend
done
check "/var/spool/smtpsend is root:root 1733" \
    test "$(stat -c '%U:%G %a' /var/spool/smtpsend)" = "root:root 1733"
check "/etc/smtpsend.toml is a conffile" \
    sh -c "dpkg-query -W -f='\${Conffiles}' smtpsend | grep -q '/etc/smtpsend.toml '"
check "sendmail(8) is the man page" test -e /usr/share/man/man8/sendmail.8.gz
if command -v systemd-analyze >/dev/null; then
    # No systemd runs here, but the units' syntax and commands can be checked.
    check "systemd units verify" sh -c "systemd-analyze verify --man=no \
        /usr/lib/systemd/system/smtpsend-queue.timer \
        /usr/lib/systemd/system/smtpsend-queue.service \
        /usr/lib/systemd/system/smtpsend-flush.service >'$work/verify.log' 2>&1 \
        && ! grep -q . '$work/verify.log' || { cat '$work/verify.log'; false; }"
fi
check "shipped config parses (dry run)" \
    sh -c "printf 'Subject: dry\\n\\nrun\\n' | /usr/sbin/sendmail --dry-run root >/dev/null"

# --- the relay --------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$work/captured
mkdir -p "$out"
relay_pid=
relay_up() {
    python3 "$HERE/capture.py" "$port" "$out" "$LIMIT" >>"$work/capture.log" 2>&1 &
    relay_pid=$!
    for _ in $(seq 100); do
        python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && return 0
        sleep 0.1
    done
    log "the capture server did not start"
    cat "$work/capture.log"
    return 1
}
relay_down() {
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
}
relay_up

cat >/etc/smtpsend.toml <<EOF
host = "127.0.0.1"
port = $port
tls = "none"
domain = "example.org"
timeout = 10

[aliases]
ops = "ops-team@example.org"
sudo-admin = "secteam@example.org"
EOF
chmod 644 /etc/smtpsend.toml

# wait_msg TAG SECONDS: prints the captured file that contains TAG.
wait_msg() {
    local tag=$1 deadline=$(($(date +%s) + $2)) f
    while [ "$(date +%s)" -le "$deadline" ]; do
        f=$(grep -l -F -- "$tag" "$out"/*.eml 2>/dev/null | head -n 1 || true)
        if [ -n "$f" ]; then
            echo "$f"
            return 0
        fi
        sleep 0.5
    done
    return 1
}
# expect NAME TAG SECONDS ASSERT_ARGS...: one check per caller.
expect() {
    local name=$1 tag=$2 secs=$3 f
    shift 3
    if f=$(wait_msg "$tag" "$secs"); then
        check "$name" python3 "$HERE/assert_msg.py" "$f" "$@"
    else
        bad "$name: no message with '$tag' within ${secs}s"
    fi
}

# The real cron daemon, started now so that its minute comes while the
# other callers run. A container cannot set the login uid: the overlay's
# PAM config lets pam_loginuid fail (the host's is untouched).
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/cron 2>/dev/null || true
cat >/etc/cron.d/pkgtest <<'EOF'
MAILTO=ops
* * * * * root echo "pkgtest cron output"; printf 'Gr\303\274\303\237e aus cron\n'
EOF
chmod 644 /etc/cron.d/pkgtest
cron -f -L 0 >"$work/cron.log" 2>&1 &

utf8='Grüße'

# --- bsd-mailx ----------------------------------------------------------------
# Debian's mail.rc sets `dot`, so a lone "." would end mailx's own input:
# mailx is given "..", ".x" and 8-bit text; the lone dot is tested below.
printf '%s aus mailx\n..\n.x\nend\n' "$utf8" |
    bsd-mailx -s "pkgtest mailx" -b bcc-mailx@example.org alice || bad "bsd-mailx exit $?"
expect "bsd-mailx: envelope, bare name qualified, Bcc stripped, 8-bit, dots" "pkgtest mailx" 20 \
    --mail-from root@example.org --rcpt alice@example.org --rcpt bcc-mailx@example.org \
    --no-header Bcc --line "$utf8 aus mailx" --line ".." --line ".x"

# --- s-nail -------------------------------------------------------------------
printf '%s aus s-nail\n..\n' "$utf8" |
    s-nail -Smime-encoding=8bit -s "pkgtest s-nail" -b bcc-snail@example.org bob || bad "s-nail exit $?"
expect "s-nail: envelope, Bcc stripped, 8-bit" "pkgtest s-nail" 20 \
    --mail-from root@example.org --rcpt bob@example.org --rcpt bcc-snail@example.org \
    --no-header Bcc --line "$utf8 aus s-nail" --line ".."

# --- mutt (batch mode) --------------------------------------------------------
printf 'mutt body\n.\n..\nFrom the start of a line\n%s\n' "$utf8" |
    mutt -n -F /dev/null -e 'set charset=utf-8 send_charset=utf-8' \
        -s "pkgtest mutt" -b bcc-mutt@example.org carol@example.org || bad "mutt exit $?"
expect "mutt: Bcc stripped, lone dot and 8-bit intact" "pkgtest mutt" 20 \
    --rcpt carol@example.org --rcpt bcc-mutt@example.org --no-header Bcc \
    --line "." --line ".." --line "From the start of a line" --line "$utf8"

# --- git send-email -----------------------------------------------------------
repo=$work/repo
git init -q "$repo"
printf '%s\n.\nline\n' "$utf8" >"$repo/file.txt"
git -C "$repo" add file.txt
git -C "$repo" -c user.name=Dev -c user.email=dev@example.org commit -q -m "pkgtest git"
git -C "$repo" format-patch -q -1 -o "$work/patches" >/dev/null
git -C "$repo" send-email --quiet --confirm=never --suppress-cc=all \
    --from='Dev <dev@example.org>' --envelope-sender=dev@example.org --to=dave@example.org --bcc=bcc-git@example.org \
    --smtp-server=/usr/sbin/sendmail "$work"/patches/*.patch >/dev/null || bad "git send-email exit $?"
expect "git send-email: envelope sender, Bcc stripped, patch lines intact" "pkgtest git" 20 \
    --mail-from dev@example.org --rcpt dave@example.org --rcpt bcc-git@example.org \
    --no-header Bcc --line "+$utf8" --line "+." --line "+line"

# --- PHP mail() as www-data ---------------------------------------------------
start=$(date +%s%N)
# shellcheck disable=SC2016 # PHP code: $ok is PHP's
runuser -u www-data -- php -r '
    $ok = mail("erin", "pkgtest php", "php body\n.\nline after a dot\n",
               "From: web@example.org\r\nBcc: bcc-php@example.org");
    exit($ok ? 0 : 1);' || bad "php mail() returned false"
php_ms=$((($(date +%s%N) - start) / 1000000))
expect "PHP mail() as www-data: bare name qualified, Bcc stripped, dot line" "pkgtest php" 20 \
    --rcpt erin@example.org --rcpt bcc-php@example.org --no-header Bcc \
    --line "." --line "line after a dot"
log "PHP mail() returned after ${php_ms} ms"

# --- sudo's mail --------------------------------------------------------------
useradd -M -s /bin/sh pkgtest
cat >/etc/sudoers.d/pkgtest <<'EOF'
Defaults mail_always
Defaults mailto="sudo-admin"
Defaults mailsub="pkgtest sudo %h"
pkgtest ALL=(root) NOPASSWD: /bin/true
EOF
chmod 440 /etc/sudoers.d/pkgtest
runuser -u pkgtest -- sudo -n /bin/true || bad "sudo exit $?"
expect "sudo's mail: alias for its mailto" "pkgtest sudo" 20 \
    --rcpt secteam@example.org

# --- logwatch -----------------------------------------------------------------
# The dpkg service always has something to say today: the install above.
logwatch --output mail --mailto ops --range today --service dpkg \
    --detail low >"$work/logwatch.log" 2>&1 || bad "logwatch exit $?: $(cat "$work/logwatch.log")"
expect "logwatch: report mailed through the alias" "Logwatch for" 60 \
    --rcpt ops-team@example.org

# --- cron ---------------------------------------------------------------------
expect "cron: MAILTO through [aliases], 8-bit output" "pkgtest cron output" 75 \
    --mail-from root@example.org --rcpt ops-team@example.org --line "Grüße aus cron"
rm -f /etc/cron.d/pkgtest

# --- Debian's /etc/mailname and /etc/aliases ---------------------------------
# With no `domain` and no [aliases] in the configuration, bare names are
# resolved the Debian way.
cp /etc/smtpsend.toml "$work/smtpsend.toml.full"
printf 'host = "127.0.0.1"\nport = %s\ntls = "none"\ntimeout = 10\n' "$port" >/etc/smtpsend.toml
echo "mail.example.net" >/etc/mailname
printf '# test\nhelpdesk: support@example.com,\n\tcarol\nbroken: |/bin/false\n' >/etc/aliases
printf 'Subject: pkgtest mailname\n\nvia /etc/aliases\n' |
    /usr/sbin/sendmail -i helpdesk dave || bad "sendmail exit $?"
expect "/etc/mailname qualifies, /etc/aliases expands (continuation line)" "pkgtest mailname" 20 \
    --mail-from root@mail.example.net \
    --rcpt support@example.com --rcpt carol@mail.example.net --rcpt dave@mail.example.net
rm -f /etc/mailname
cp "$work/smtpsend.toml.full" /etc/smtpsend.toml

# --- the queue drains itself ----------------------------------------------------
relay_down
if printf 'Subject: pkgtest drain\n\nqueued while the relay was down\n' |
    /usr/sbin/sendmail -i zed@example.org 2>"$work/drain.err"; then
    ok "relay down: the message is accepted (queued)"
else
    bad "relay down: sendmail failed: $(cat "$work/drain.err")"
fi
relay_up
drain_start=$(date +%s)
# Nothing is run from here on: the retrier the submission left behind, or
# else cron's /etc/cron.d/smtpsend (no systemd in here) running
# `smtpsend -q`, sends it when the entry's own retry time comes.
expect "relay back: delivered with no command run" "pkgtest drain" 200 \
    --rcpt zed@example.org
log "drained $(($(date +%s) - drain_start)) s after the relay came back"

# --- removal keeps queued mail ------------------------------------------------
relay_down
printf 'Subject: pkgtest kept\n\nstays queued\n' | runuser -u www-data -- /usr/sbin/sendmail -i kept@example.org || true
queued=$(find /var/spool/smtpsend -type f ! -name '*.lock' | wc -l)
if [ "$queued" -gt 0 ]; then
    ok "relay down: www-data's message queued in the system spool"
else
    # A binary without the per-uid system spool (issue 12) sends
    # www-data's mail directly and keeps nothing: put a queued file where
    # that spool would, so that the maintainer scripts are still tested.
    skip "www-data's message queued in /var/spool/smtpsend (this binary has no per-uid system spool yet, issue 12)"
    install -d -o www-data -g www-data -m 0700 /var/spool/smtpsend/33
    printf 'Subject: planted\n\nx\n' >/var/spool/smtpsend/33/planted.eml
fi
dpkg --force-depends -r smtpsend >"$work/remove.log" 2>&1 || true
check "remove says the queue is kept" grep -q "still holds" "$work/remove.log"
dpkg --force-depends -P smtpsend >"$work/purge.log" 2>&1 || true
check "purge keeps a queue with mail in it, and says so" \
    sh -c "grep -q 'still holds' '$work/purge.log' && [ -n \"\$(find /var/spool/smtpsend -type f ! -name '*.lock')\" ]"
check "purge removed the conffile" test ! -e /etc/smtpsend.toml
rm -rf /var/spool/smtpsend
dpkg --force-depends -i "$deb" >/dev/null 2>&1 || bad "reinstall"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||' | grep -v '/$' >"$work/files"
dpkg --force-depends -P smtpsend >"$work/purge2.log" 2>&1 || true
left=$(while read -r f; do if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done <"$work/files")
check "purge leaves none of the package's files" test -z "$left"
check "purge removes an empty spool" test ! -e /var/spool/smtpsend
[ -z "$left" ] || log "left behind: $left"

relay_down
echo "package: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
