#!/usr/bin/env bash
# up.sh STATE_DIR — start private, real mail servers on 127.0.0.1 for
# smtpsend's interop tests, with every file they use under STATE_DIR.
#
# Runs as root (Postfix and Dovecot drop privileges themselves). Never reads
# or writes /etc/postfix, /etc/dovecot, /var/spool/postfix or systemd.
# What is started, on which ports, and where mail lands is written to
# STATE_DIR/env (KEY=VALUE lines); README.md beside this script explains
# every key. Stop everything with down.sh STATE_DIR.
#
# Environment:
#   SERVERS_MAX_SECONDS    lifetime of every process started here (default 1800)
#   SERVERS_START_TIMEOUT  how long to wait for the 220 greetings (default 20)
#   SERVERS_NO_OAUTH=1     skip the OAuth2 (XOAUTH2/OAUTHBEARER) port
#   EXIM_ROOT              where .ci/install-deps unpacked Exim (default
#                          /opt/smtpsend-exim); without it EXIM_PORT is empty
#
# On failure it prints the tails of the relevant logs, stops whatever it had
# started, and exits non-zero.
set -euo pipefail
# Without job control (the default for scripts, made sure here) a background
# child stays in our process group, so `setsid` makes it a new group leader
# in place and $! is that group's id.
set +m

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
MAX=${SERVERS_MAX_SECONDS:-1800}
START_TIMEOUT=${SERVERS_START_TIMEOUT:-20}
[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "up.sh: must run as root (Postfix and Dovecot need it)" >&2; exit 1; }

t_start=$(date +%s%N)
log() { printf 'up.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$1"
# Absolute and free of symlinks: Postfix compares maillog_file against
# maillog_file_prefixes as strings.
STATE=$(cd "$1" && pwd -P)
[ ! -e "$STATE/pids" ] || die "$STATE/pids exists: servers already started here? (run down.sh first, or use a fresh dir)"
# smtpd runs as postfix, virtual(8) as nobody, Dovecot's auth as dovecot: all
# must be able to traverse every directory down to STATE.
chmod 0755 "$STATE"
d=$STATE
while [ "$d" != / ]; do
    perms=$(stat -c %A "$d")
    [ "${perms:9:1}" = x ] || [ "${perms:9:1}" = t ] ||
        die "$d is not searchable by others ($perms): unprivileged server processes cannot reach $STATE"
    d=$(dirname "$d")
done

# Unix socket paths are limited to 107 bytes; Dovecot and Postfix put their
# sockets a few levels below STATE.
[ ${#STATE} -le 60 ] || die "STATE_DIR path is too long for unix sockets (${#STATE} > 60 bytes): $STATE"

LOGDIR=$STATE/log
TLS=$STATE/tls
PF=$STATE/postfix
PFETC=$PF/etc
SPOOL=$PF/spool
DC=$STATE/dovecot
DCRUN=$DC/run
MAILROOT=$STATE/mail
LMTPROOT=$STATE/lmtp-mail
CAPTURE=$STATE/aiosmtpd
PIDS=$STATE/pids
mkdir -p "$LOGDIR" "$TLS" "$PFETC" "$SPOOL" "$DC" "$CAPTURE"
: >"$PIDS"

# Test accounts. alice's password has a space so that clients that split or
# quote it wrongly fail; bob has no domain part (a bare login name).
SASL_USER=alice@example.org
SASL_PASSWORD='wonderland s3cret'
SASL_USER2=bob
SASL_PASSWORD2=builder
# Domains that get their own catch-all Maildir under mail/; anything else
# lands in mail/other/.
MAIL_DOMAINS=(example.org example.com example.net localhost)

# RSA key generation is the slowest step of start-up (~0.4 s a key): start
# both keys now, on both cores, and sign once the configuration is written.
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TLS/ca.key" 2>"$LOGDIR/openssl-ca.log" &
keygen_ca=$!
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TLS/server.key" 2>"$LOGDIR/openssl-server.log" &
keygen_server=$!

# The interpreter itself, not pyenv's shim: the shim costs ~0.3 s per call.
PY=${SERVERS_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}

# ---------------------------------------------------------------------------
# Failure handling: tell what went wrong, stop what was started.
on_exit() {
    local rc=$?
    [ $rc -eq 0 ] && return
    log "FAILED (exit $rc); log tails follow"
    for f in "$LOGDIR"/*.log "$PF/maillog" "$DC/dovecot.log"; do
        [ -s "$f" ] || continue
        printf '==> %s <==\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
    "$HERE/down.sh" "$STATE" >&2 || true
    exit $rc
}
trap on_exit EXIT

# ---------------------------------------------------------------------------
# Ports. Chosen under a machine-wide lock held until every server has bound
# its ports, so two up.sh runs at once never pick the same one; netutil.py
# picks ports below the ephemeral range, free at the time of asking.
exec 9>>/tmp/smtpsend-test-servers.lock
flock -w 120 9 || die "could not get /tmp/smtpsend-test-servers.lock within 120 s"
mapfile -t ports < <("$PY" "$HERE/netutil.py" free-ports 10)
[ ${#ports[@]} -eq 10 ] || die "could not choose free ports"
PLAIN_PORT=${ports[0]}
NOPIPE_PORT=${ports[1]}
SUBMISSION_PORT=${ports[2]}
SMTPS_PORT=${ports[3]}
OAUTH_PORT=${ports[4]}
LMTP_PORT=${ports[5]}
AIOSMTPD_PORT=${ports[6]}
AIOSMTPD_TLS_PORT=${ports[7]}
# ports[8] is spare: a port that nothing listens on, for connection-refused tests.
CLOSED_PORT=${ports[8]}
EXIM_PORT=${ports[9]}
EXIM_ROOT=${EXIM_ROOT:-/opt/smtpsend-exim}
EXIM_BIN=$EXIM_ROOT/usr/sbin/exim4
EXIM=""
[ -x "$EXIM_BIN" ] && id Debian-exim >/dev/null 2>&1 && EXIM=1
EXIMDIR=$STATE/exim
OAUTH=1
[ "${SERVERS_NO_OAUTH:-}" = 1 ] && OAUTH=""

# Every server is started through this: its own session and process group
# (setsid), so down.sh can stop it with all its children and a test runner's
# Ctrl-C does not reach it half-way; bounded by `timeout` so it ends by itself
# after MAX seconds even if down.sh is never run; stdio on files, so a caller
# that captures up.sh's output does not wait for these to close it; fd 9 (the
# lock) closed. Records "NAME PGID STARTTIME" in pids for down.sh.
launch() {
    local name=$1 logfile=$2
    shift 2
    setsid timeout -k 5 "$MAX" "$@" </dev/null >>"$logfile" 2>&1 9>&- &
    record "$name" $!
}
record() {
    local stat
    # A process that died at once has no stat: record it anyway; the greeting
    # wait will fail and show its log.
    stat=$(cat "/proc/$2/stat" 2>/dev/null) || { echo "$1 $2 gone" >>"$PIDS"; return 0; }
    # The fields after the ")" that ends the command name start at field 3
    # (state); with name and pid put before them, field N is at ${N}, and
    # field 22 is the start time, which tells a reused pid from ours.
    set -- "$1" "$2" ${stat##*) }
    echo "$1 $2 ${22}" >>"$PIDS"
}

# ---------------------------------------------------------------------------
# TLS: a throwaway CA and a server certificate for localhost / 127.0.0.1.
# The CA and the leaf carry the key identifier extensions that strict
# verifiers (webpki, Python 3.13's VERIFY_X509_STRICT) want.
wait "$keygen_ca" || die "RSA key generation failed: $(cat "$LOGDIR/openssl-ca.log")"
wait "$keygen_server" || die "RSA key generation failed: $(cat "$LOGDIR/openssl-server.log")"
openssl req -x509 -new -key "$TLS/ca.key" -sha256 -days 30 \
    -subj "/CN=smtpsend test CA $$" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$TLS/ca.pem" 2>"$LOGDIR/openssl.log"
openssl req -new -key "$TLS/server.key" -sha256 -subj "/CN=localhost" \
    -out "$TLS/server.csr" 2>>"$LOGDIR/openssl.log"
cat >"$TLS/server.ext" <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
openssl x509 -req -sha256 -days 30 -in "$TLS/server.csr" \
    -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAserial "$TLS/ca.srl" -CAcreateserial \
    -extfile "$TLS/server.ext" -out "$TLS/server.pem" 2>>"$LOGDIR/openssl.log"
chmod 0600 "$TLS"/*.key
cp "$TLS/ca.pem" "$STATE/ca.pem"

# ---------------------------------------------------------------------------
# Mail stores. Both servers deliver as nobody:nogroup; tests run as root and
# can read everything.
install -d -o nobody -g nogroup -m 0755 "$MAILROOT" "$LMTPROOT"
for dom in "${MAIL_DOMAINS[@]}" other; do
    for sub in "" /tmp /new /cur; do
        install -d -o nobody -g nogroup -m 0755 "$MAILROOT/$dom$sub"
    done
done

# ---------------------------------------------------------------------------
# Dovecot: SASL for Postfix (auth socket), LMTP on TCP and a unix socket.
DOVECOT_INSTANCE=smtpsend-$(basename "$STATE")
PASSWD=$DC/passwd
# passwd-file: user:password:uid:gid:gecos:home:shell:extra. uid/gid/home
# come from userdb default_fields. {PLAIN} lets every mechanism work,
# including CRAM-MD5 and SCRAM-*, which need the plaintext (or their own hash).
{
    printf '%s:{PLAIN}%s::::::\n' "$SASL_USER" "$SASL_PASSWORD"
    printf '%s:{PLAIN}%s::::::\n' "$SASL_USER2" "$SASL_PASSWORD2"
    printf '%s:{PLAIN}%s::::::\n' "bob@example.org" "$SASL_PASSWORD2"
} >"$PASSWD"
chown root:dovecot "$PASSWD"
chmod 0640 "$PASSWD"

PASSWORD_MECHS="plain login cram-md5 scram-sha-1 scram-sha-256"
AUTH_MECHS=$PASSWORD_MECHS
OAUTH_PASSDB=""
if [ -n "$OAUTH" ]; then
    # OAuth2 bearer tokens validated locally (no identity provider): Dovecot
    # checks an HS256 JWT's signature against a key it looks up in a dict at
    # <prefix>/<azp or "default">/<alg>/<kid or "default">, base64-encoded,
    # and checks exp/nbf/iat. mint-token makes such tokens.
    AUTH_MECHS="$AUTH_MECHS xoauth2 oauthbearer"
    install -d -m 0755 "$DC/oauth-keys/default/HS256"
    openssl rand -base64 32 \
        >"$DC/oauth-keys/default/HS256/default"
    chmod 0644 "$DC/oauth-keys/default/HS256/default"
    cp "$DC/oauth-keys/default/HS256/default" "$STATE/oauth2-hs256.key"
    cat >"$DC/oauth2.conf.ext" <<EOF
introspection_mode = local
local_validation_key_dict = fs:posix:prefix=$DC/oauth-keys/
username_attribute = sub
EOF
    OAUTH_PASSDB="passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $DC/oauth2.conf.ext
}"
fi

cat >"$DC/dovecot.conf" <<EOF
# Private Dovecot for smtpsend's interop tests; written by up.sh.
base_dir = $DCRUN
state_dir = $DC/state
instance_name = $DOVECOT_INSTANCE
log_path = $DC/dovecot.log
info_log_path = $DC/dovecot.log
hostname = localhost
protocols = lmtp
listen = 127.0.0.1
ssl = no
# Postfix does the TLS; the auth socket is local.
disable_plaintext_auth = no

auth_mechanisms = $AUTH_MECHS
auth_verbose = yes
# No deliberate slowness for failed logins: wrong-password tests must be fast.
# The anvil penalty (2, 4, 8 ... 15 s per failure from one IP, and Postfix
# passes 127.0.0.1 for every client) is turned off by giving its socket mode 0.
auth_failure_delay = 0
auth_cache_size = 0

passdb {
  driver = passwd-file
  mechanisms = $PASSWORD_MECHS
  args = scheme=PLAIN username_format=%u $PASSWD
}
$OAUTH_PASSDB
userdb {
  driver = passwd-file
  args = username_format=%u $PASSWD
  default_fields = uid=65534 gid=65534 home=$LMTPROOT/%u
}
mail_location = maildir:$LMTPROOT/%u

service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service lmtp {
  unix_listener $STATE/lmtp.sock {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
EOF

# ---------------------------------------------------------------------------
# Postfix: one master, several smtpd services (one per port), delivery by
# virtual(8) into per-domain catch-all Maildirs.
for d in active bounce corrupt defer deferred flush hold incoming private saved trace; do
    install -d -o postfix -g root -m 0700 "$SPOOL/$d"
done
install -d -o postfix -g postdrop -m 0730 "$SPOOL/maildrop"
install -d -o postfix -g postdrop -m 0710 "$SPOOL/public"
install -d -o root -g root -m 0755 "$SPOOL/pid"
install -d -o postfix -g root -m 0700 "$PF/data"
# Empty: texthash, regexp and static are built in; nothing from
# /etc/postfix/dynamicmaps.cf is wanted.
: >"$PFETC/dynamicmaps.cf"

# One regexp map (no postmap needed, read when a process starts): a
# catch-all Maildir per listed domain, everything else in other/. A trailing
# "/" means Maildir. It must be a single map: with several maps Postfix tries
# the full address against all of them before it tries "@domain", so a
# catch-all in a second map would win over a texthash "@domain" entry.
{
    for dom in "${MAIL_DOMAINS[@]}"; do printf '/@%s$/\t%s/\n' "${dom//./\\.}" "$dom"; done
    printf '/./\tother/\n'
} >"$PFETC/vmailbox"
cat >"$PFETC/recipient_access" <<'EOF'
reject.test	550 5.1.1 Recipient refused by test policy (reject.test)
defer.test	450 4.2.0 Recipient deferred by test policy (defer.test)
EOF

SUBMIT_OPTS="
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o mynetworks=192.0.2.1/32
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject"

cat >"$PFETC/main.cf" <<EOF
# Private Postfix for smtpsend's interop tests; written by up.sh.
compatibility_level = 3.6
queue_directory = $SPOOL
data_directory = $PF/data
meta_directory = $PFETC
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $PF/maillog
maillog_file_prefixes = $STATE
syslog_name = postfix-smtpsend

myhostname = localhost
mydomain = localdomain
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no

# Nothing leaves this machine: every domain is a virtual mailbox domain and
# anything that would still reach a relay transport bounces.
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
local_transport = virtual
default_transport = error:5.7.1 outbound mail is disabled in the smtpsend test instance
relay_transport = \$default_transport
virtual_mailbox_domains = static:all
virtual_mailbox_base = $MAILROOT
virtual_mailbox_maps = regexp:$PFETC/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534

message_size_limit = 10485760
smtputf8_enable = yes
smtpd_banner = \$myhostname ESMTP Postfix (smtpsend test)
# Tests see replies at once instead of after Postfix's anti-spam pauses.
smtpd_error_sleep_time = 0
in_flow_delay = 0
# Stricter than a default Postfix (3.9+ normalizes bare LFs): a client that
# pipelines where it must not, or sends a bare LF, is caught here rather than
# by some server in production. No exclusions: 127.0.0.1 is in mynetworks.
smtpd_forbid_unauth_pipelining = yes
smtpd_forbid_bare_newline = reject
smtpd_forbid_bare_newline_exclusions =

smtpd_tls_cert_file = $TLS/server.pem
smtpd_tls_key_file = $TLS/server.key
smtpd_tls_security_level = none
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1

smtpd_sasl_type = dovecot
smtpd_sasl_path = $DCRUN/auth-postfix
smtpd_sasl_auth_enable = no
smtpd_sasl_authenticated_header = yes
smtpd_sasl_mechanism_filter = !external, !xoauth2, !oauthbearer, static:rest

smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access texthash:$PFETC/recipient_access
EOF

{
    cat <<EOF
# Private Postfix for smtpsend's interop tests; written by up.sh.
# service  type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$PLAIN_PORT inet n - n - - smtpd
  -o syslog_name=postfix/plain
127.0.0.1:$NOPIPE_PORT inet n - n - - smtpd
  -o syslog_name=postfix/nopipe
  -o smtpd_discard_ehlo_keywords=pipelining,chunking
127.0.0.1:$SUBMISSION_PORT inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt$SUBMIT_OPTS
127.0.0.1:$SMTPS_PORT inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt$SUBMIT_OPTS
EOF
    if [ -n "$OAUTH" ]; then
        cat <<EOF
127.0.0.1:$OAUTH_PORT inet n - n - - smtpd
  -o syslog_name=postfix/oauth
  -o smtpd_tls_security_level=encrypt$SUBMIT_OPTS
  -o smtpd_sasl_mechanism_filter=xoauth2,oauthbearer
EOF
    fi
    cat <<'EOF'
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
virtual    unix  - n n -  - virtual
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
} >"$PFETC/master.cf"

# A config file younger than a second or so makes the master wait for it to
# "settle" (~1.5 s); these are ours and complete, so backdate them.
backdate=$(( $(date +%s) - 60 ))
touch -d "@$backdate" "$PFETC"/* "$DC"/*.conf* "$PASSWD"

postconf -c "$PFETC" -n >/dev/null 2>"$LOGDIR/postconf.log" ||
    die "postconf rejects the generated main.cf: $(cat "$LOGDIR/postconf.log")"

# ---------------------------------------------------------------------------
# Exim 4.96 (unpacked by .ci/install-deps, never installed): plain SMTP with
# PIPELINING, CHUNKING, SMTPUTF8, 8BITMIME; accepts any recipient but
# *@reject.test, and delivers every message to one Maildir. Runs as the
# Debian-exim user it was built for; -C makes it drop root for good.
if [ -n "$EXIM" ]; then
    install -d -o Debian-exim -g Debian-exim -m 0755 "$EXIMDIR" "$EXIMDIR/spool" "$EXIMDIR/log" "$EXIMDIR/maildir"
    cat >"$EXIMDIR/exim.conf" <<EOF
exim_path = $EXIM_BIN
primary_hostname = exim.test
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = $EXIMDIR/spool
log_file_path = $EXIMDIR/log/%slog
pid_file_path = $EXIMDIR/exim.pid
local_interfaces = 127.0.0.1
chunking_advertise_hosts = *
pipelining_advertise_hosts = *
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
message_size_limit = 50M
recipients_max = 3
queue_only = false
keep_environment =
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  deny    domains = reject.test
          message = 5.1.1 no such user here
  accept

begin routers
all:
  driver = accept
  transport = maildir

begin transports
maildir:
  driver = appendfile
  directory = $EXIMDIR/maildir
  maildir_format = true
  create_directory = true
  envelope_to_add = true
  return_path_add = true
  user = Debian-exim
  group = Debian-exim
  mode = 0644
EOF
fi

# ---------------------------------------------------------------------------
# Start. Dovecot first: Postfix's smtpd connects to its auth socket.
launch dovecot "$LOGDIR/dovecot.out.log" dovecot -F -c "$DC/dovecot.conf"
# The master must lead its own process group: on SIGTERM it signals
# -getpid(), so under timeout it needs a setsid of its own. Its pid (and so
# its process group) is recorded from master.pid once it is up.
launch postfix "$LOGDIR/postfix-master.log" setsid /usr/lib/postfix/sbin/master -c "$PFETC" -d
launch aiosmtpd "$LOGDIR/aiosmtpd.log" "$PY" "$HERE/aiosmtpd_capture.py" \
    --port "$AIOSMTPD_PORT" --tls-port "$AIOSMTPD_TLS_PORT" \
    --cert "$TLS/server.pem" --key "$TLS/server.key" --out "$CAPTURE" \
    --user "$SASL_USER" --password "$SASL_PASSWORD"
[ -n "$EXIM" ] && launch exim "$LOGDIR/exim.out.log" "$EXIM_BIN" -C "$EXIMDIR/exim.conf" -bdf -oX "$EXIM_PORT"

specs=(
    plain=tcp:$PLAIN_PORT
    nopipe=tcp:$NOPIPE_PORT
    submission=tcp:$SUBMISSION_PORT
    smtps=tls:$SMTPS_PORT:$TLS/ca.pem
    lmtp=tcp:$LMTP_PORT
    lmtp-socket=unix:$STATE/lmtp.sock
    aiosmtpd=tcp:$AIOSMTPD_PORT
    aiosmtpd-tls=tls:$AIOSMTPD_TLS_PORT:$TLS/ca.pem
)
[ -n "$OAUTH" ] && specs+=(oauth=tcp:$OAUTH_PORT)
[ -n "$EXIM" ] && specs+=(exim=tcp:$EXIM_PORT)
"$PY" "$HERE/netutil.py" wait "$START_TIMEOUT" "${specs[@]}" ||
    die "not every server answered with 220 within $START_TIMEOUT s"
# Every port is bound now: other up.sh runs may choose theirs.
exec 9>&-

master_pid=$(tr -d ' \n' <"$SPOOL/pid/master.pid")
record postfix-master "$master_pid"

# ---------------------------------------------------------------------------
# What the tests need to know. KEY=VALUE, the value is everything after the
# first "=", unquoted (SASL_PASSWORD contains a space): read it line by line,
# do not `source` it.
OAUTH_USER=$SASL_USER
OAUTH_TOKEN=""
[ -n "$OAUTH" ] && OAUTH_TOKEN=$("$PY" "$HERE/mint-token" "$STATE" "$OAUTH_USER" --lifetime "$((MAX + 300))")
{
    echo "STATE_DIR=$STATE"
    echo "HOST=127.0.0.1"
    echo "TLS_NAME=localhost"
    echo "CA_FILE=$STATE/ca.pem"
    echo "PLAIN_PORT=$PLAIN_PORT"
    echo "NOPIPE_PORT=$NOPIPE_PORT"
    echo "SUBMISSION_PORT=$SUBMISSION_PORT"
    echo "SMTPS_PORT=$SMTPS_PORT"
    echo "OAUTH_PORT=${OAUTH:+$OAUTH_PORT}"
    echo "LMTP_PORT=$LMTP_PORT"
    echo "LMTP_SOCKET=$STATE/lmtp.sock"
    echo "AIOSMTPD_PORT=$AIOSMTPD_PORT"
    echo "AIOSMTPD_TLS_PORT=$AIOSMTPD_TLS_PORT"
    echo "CLOSED_PORT=$CLOSED_PORT"
    echo "EXIM_PORT=${EXIM:+$EXIM_PORT}"
    echo "EXIM_MAILDIR=${EXIM:+$EXIMDIR/maildir}"
    echo "EXIM_LOG=${EXIM:+$EXIMDIR/log/mainlog}"
    echo "MAILDIR_ROOT=$MAILROOT"
    echo "LMTP_MAILDIR_ROOT=$LMTPROOT"
    echo "AIOSMTPD_DIR=$CAPTURE"
    echo "POSTFIX_LOG=$PF/maillog"
    echo "DOVECOT_LOG=$DC/dovecot.log"
    echo "AIOSMTPD_LOG=$LOGDIR/aiosmtpd.log"
    echo "SASL_USER=$SASL_USER"
    echo "SASL_PASSWORD=$SASL_PASSWORD"
    echo "SASL_USER2=$SASL_USER2"
    echo "SASL_PASSWORD2=$SASL_PASSWORD2"
    echo "SASL_MECHANISMS=PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256"
    echo "LMTP_USERS=alice@example.org bob@example.org"
    echo "MAIL_DOMAINS=${MAIL_DOMAINS[*]}"
    echo "REJECT_DOMAIN=reject.test"
    echo "DEFER_DOMAIN=defer.test"
    echo "MESSAGE_SIZE_LIMIT=10485760"
    echo "OAUTH_USER=${OAUTH:+$OAUTH_USER}"
    echo "OAUTH_TOKEN=$OAUTH_TOKEN"
    echo "OAUTH_KEY_FILE=${OAUTH:+$STATE/oauth2-hs256.key}"
    echo "MINT_TOKEN=${OAUTH:+$HERE/mint-token}"
    echo "SERVERS_DEADLINE=$(( $(date +%s) + MAX ))"
} >"$STATE/env.tmp"
mv "$STATE/env.tmp" "$STATE/env"

t_ms=$(( ($(date +%s%N) - t_start) / 1000000 ))
log "servers up in ${t_ms} ms; env in $STATE/env"
