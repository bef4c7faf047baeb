#!/usr/bin/env python3
"""Self-test of the servers started by up.sh, using Python's smtplib, the
reference client, so that a failure here is the servers' fault, not
smtpsend's.

    check.py STATE_DIR

Each check prints PASS or FAIL with the reason; the last line is
"N passed, N failed" and the exit status is non-zero if anything failed.
"""

import base64
import glob
import hashlib
import hmac
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import traceback
import uuid

DELIVERY_TIMEOUT = 15.0  # seconds for Postfix's queue manager to deliver
IO_TIMEOUT = 10.0        # seconds for any one SMTP conversation step


def load_env(state_dir):
    env = {}
    with open(os.path.join(state_dir, "env"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


E = {}


def tls_context():
    # With cafile given, only that CA is trusted (no system store), and the
    # host name "localhost" / 127.0.0.1 is checked against the SAN.
    return ssl.create_default_context(cafile=E["CA_FILE"])


def marker():
    return uuid.uuid4().hex


def message(to, subject, mark, body="Hello from check.py.\r\n", sender="sender@example.net"):
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{mark}@check.py>\r\nX-Check-Id: {mark}\r\n\r\n{body}").encode("utf-8")


def find_delivery(directory, mark, timeout=DELIVERY_TIMEOUT):
    """Waits for a file in DIRECTORY/new containing MARK; returns its bytes."""
    deadline = time.monotonic() + timeout
    needle = mark.encode()
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(directory, "new", "*")):
            with open(path, "rb") as f:
                data = f.read()
            if needle in data:
                return data
        time.sleep(0.05)
    raise AssertionError(f"no message with {mark} in {directory}/new after {timeout} s")


def maillog_lines(pattern, timeout=DELIVERY_TIMEOUT):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        with open(E["POSTFIX_LOG"], encoding="utf-8", errors="replace") as f:
            hits = [line for line in f if rx.search(line)]
        if hits:
            return hits
        time.sleep(0.05)
    raise AssertionError(f"nothing matching {pattern!r} in {E['POSTFIX_LOG']}")


def header(data, name):
    head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", head)
    return m.group(1).decode("utf-8", "replace").strip() if m else None


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def smtp(port_key, **kw):
    s = smtplib.SMTP("127.0.0.1", int(E[port_key]), local_hostname="check.example.net",
                     timeout=IO_TIMEOUT, **kw)
    return s


def login_submission(mech, user=None, password=None):
    """A STARTTLS session on SUBMISSION_PORT authenticated with MECH."""
    s = smtp("SUBMISSION_PORT")
    s.ehlo()
    s.starttls(context=tls_context())
    s.ehlo()
    s.user = user or E["SASL_USER"]
    s.password = password if password is not None else E["SASL_PASSWORD"]
    auth_object = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
    s.auth(mech, auth_object)
    return s


# ---------------------------------------------------------------------------
# A raw connection for what smtplib cannot do: pipelining and BDAT.

class Raw:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buf = b""

    def reply(self):
        """One (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"connection closed; had {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------
# SCRAM (RFC 5802 / 7677) client, to prove the SCRAM mechanisms Dovecot
# advertises do work end to end (smtplib has no SCRAM).

def scram_authobject(user, password, hash_name):
    nonce = base64.b64encode(os.urandom(18)).decode()
    client_first_bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={nonce}"
    state = {"step": 0}

    def H(data):
        return hashlib.new(hash_name, data).digest()

    def HMAC(key, data):
        return hmac.new(key, data, hash_name).digest()

    def authobject(challenge=None):
        if challenge is None and state["step"] == 0:
            state["step"] = 1
            return "n,," + client_first_bare
        if state["step"] == 1:
            state["step"] = 2
            server_first = challenge.decode()
            attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
            expect(attrs["r"].startswith(nonce), "server nonce does not extend ours")
            salt = base64.b64decode(attrs["s"])
            salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, int(attrs["i"]))
            client_key = HMAC(salted, b"Client Key")
            final_no_proof = f"c=biws,r={attrs['r']}"
            auth_message = f"{client_first_bare},{server_first},{final_no_proof}".encode()
            signature = HMAC(H(client_key), auth_message)
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            state["server_sig"] = HMAC(HMAC(salted, b"Server Key"), auth_message)
            return f"{final_no_proof},p={base64.b64encode(proof).decode()}"
        if state["step"] == 2:
            state["step"] = 3
            expect(challenge.decode() == "v=" + base64.b64encode(state["server_sig"]).decode(),
                   f"bad server signature {challenge!r}")
            return ""
        raise AssertionError(f"unexpected SCRAM step with {challenge!r}")

    return authobject


# ---------------------------------------------------------------------------
# The checks.

def check_plain_ehlo():
    s = smtp("PLAIN_PORT")
    code, _ = s.ehlo()
    expect(code == 250, f"EHLO {code}")
    for kw in ["pipelining", "8bitmime", "smtputf8", "chunking", "dsn", "enhancedstatuscodes"]:
        expect(s.has_extn(kw), f"{kw} not advertised: {s.esmtp_features}")
    expect(s.esmtp_features.get("size") == E["MESSAGE_SIZE_LIMIT"], f"SIZE {s.esmtp_features.get('size')}")
    expect(not s.has_extn("starttls"), "STARTTLS offered on the plain port")
    expect(not s.has_extn("auth"), "AUTH offered on the plain port")
    code, resp = s.mail("big@example.net", ["SIZE=%d" % (int(E["MESSAGE_SIZE_LIMIT"]) + 1)])
    expect(code == 552, f"oversized MAIL FROM got {code} {resp!r}")
    s.quit()


def check_plain_pipelined_send():
    """MAIL, two RCPTs and DATA in one write (RFC 2920), then the body."""
    mark = marker()
    r = Raw(int(E["PLAIN_PORT"]))
    expect(r.reply()[0] == 220, "greeting")
    r.send(b"EHLO check.example.net\r\n")
    code, lines = r.reply()
    expect(code == 250 and any("PIPELINING" in l for l in lines), f"EHLO {lines}")
    r.send(b"MAIL FROM:<pipe@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
           b"RCPT TO:<carol@example.com>\r\nDATA\r\n")
    codes = [r.reply()[0] for _ in range(4)]
    expect(codes == [250, 250, 250, 354], f"pipelined replies {codes}")
    body = message("alice@example.org", "pipelined", mark) + b"..leading dot\r\n"
    r.send(body + b".\r\n")
    code, lines = r.reply()
    expect(code == 250, f"end of data {lines}")
    r.send(b"QUIT\r\n")
    r.reply()
    r.close()
    a = find_delivery(os.path.join(E["MAILDIR_ROOT"], "example.org"), mark)
    c = find_delivery(os.path.join(E["MAILDIR_ROOT"], "example.com"), mark)
    expect(header(a, "X-Original-To") == "alice@example.org", f"X-Original-To {header(a, 'X-Original-To')}")
    expect(header(c, "X-Original-To") == "carol@example.com", f"X-Original-To {header(c, 'X-Original-To')}")
    expect(b"\n.leading dot" in a, "dot-unstuffing")


def check_plain_bdat():
    mark = marker()
    r = Raw(int(E["PLAIN_PORT"]))
    r.reply()
    r.send(b"EHLO check.example.net\r\n")
    r.reply()
    body = message("dave@example.net", "bdat", mark)
    first, last = body[:40], body[40:]
    r.send(b"MAIL FROM:<bdat@example.net>\r\nRCPT TO:<dave@example.net>\r\n")
    expect([r.reply()[0], r.reply()[0]] == [250, 250], "MAIL/RCPT")
    r.send(b"BDAT %d\r\n" % len(first) + first)
    code, lines = r.reply()
    expect(code == 250, f"BDAT chunk {lines}")
    r.send(b"BDAT %d LAST\r\n" % len(last) + last)
    code, lines = r.reply()
    expect(code == 250, f"BDAT LAST {lines}")
    r.send(b"QUIT\r\n")
    r.close()
    data = find_delivery(os.path.join(E["MAILDIR_ROOT"], "example.net"), mark)
    expect(header(data, "X-Original-To") == "dave@example.net", "X-Original-To")


def check_plain_smtputf8():
    mark = marker()
    rcpt = "jörg@example.org"
    s = smtp("PLAIN_PORT")
    s.ehlo()
    refused = s.sendmail("sénder@example.net", [rcpt],
                         message(rcpt, "smtputf8 ✓", mark, body="Grüße\r\n", sender="sénder@example.net"),
                         mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    expect(refused == {}, f"refused {refused}")
    s.quit()
    data = find_delivery(os.path.join(E["MAILDIR_ROOT"], "example.org"), mark)
    expect(header(data, "X-Original-To") == rcpt, f"X-Original-To {header(data, 'X-Original-To')}")
    received = header(data, "Received") or ""
    # RFC 6531 section 3.7.4: "UTF8SMTP" (+A/S) marks a session that declared SMTPUTF8.
    expect(re.search(r"with UTF8SMTP\b", received), f"Received does not say UTF8SMTP: {received}")


def check_bare_lf_refused():
    """smtpd_forbid_bare_newline = reject: a bare LF in DATA is an error."""
    r = Raw(int(E["PLAIN_PORT"]))
    r.reply()
    for cmd in (b"EHLO check.example.net", b"MAIL FROM:<lf@example.net>", b"RCPT TO:<lf@example.org>", b"DATA"):
        r.send(cmd + b"\r\n")
        r.reply()
    r.send(b"Subject: bare LF\r\n\r\nline one\nline two\r\n.\r\n")
    code, lines = r.reply()
    expect(code == 550 and "bare <LF>" in lines[0], f"bare LF got {lines}")
    r.close()


def check_selective_refusals():
    mark = marker()
    s = smtp("PLAIN_PORT")
    s.ehlo()
    refused = s.sendmail("mixed@example.net",
                         ["x@" + E["REJECT_DOMAIN"], "y@" + E["DEFER_DOMAIN"], "erin@example.com"],
                         message("erin@example.com", "mixed", mark))
    s.quit()
    rej = refused.get("x@" + E["REJECT_DOMAIN"])
    dfr = refused.get("y@" + E["DEFER_DOMAIN"])
    expect(rej and rej[0] == 550 and b"5.1.1" in rej[1], f"reject.test got {rej}")
    expect(dfr and dfr[0] == 450 and b"4.2.0" in dfr[1], f"defer.test got {dfr}")
    expect("erin@example.com" not in refused, f"good recipient refused: {refused}")
    find_delivery(os.path.join(E["MAILDIR_ROOT"], "example.com"), mark)


def check_catch_all_domain():
    mark = marker()
    s = smtp("PLAIN_PORT")
    s.sendmail("a@example.net", ["someone@elsewhere.invalid"], message("someone@elsewhere.invalid", "other", mark))
    s.quit()
    data = find_delivery(os.path.join(E["MAILDIR_ROOT"], "other"), mark)
    expect(header(data, "X-Original-To") == "someone@elsewhere.invalid", "X-Original-To")


def check_nopipe():
    s = smtp("NOPIPE_PORT")
    s.ehlo()
    expect(not s.has_extn("pipelining"), "PIPELINING advertised on NOPIPE_PORT")
    expect(not s.has_extn("chunking"), "CHUNKING advertised on NOPIPE_PORT")
    expect(s.has_extn("8bitmime") and s.has_extn("size"), "other extensions missing")
    mark = marker()
    s.sendmail("np@example.net", ["frank@example.org"], message("frank@example.org", "nopipe", mark))
    s.quit()
    find_delivery(os.path.join(E["MAILDIR_ROOT"], "example.org"), mark)
    # Postfix does not refuse MAIL/RCPT pipelining when PIPELINING is only
    # hidden, but smtpd_forbid_unauth_pipelining (on for every port) does
    # catch a client that sends the message before the 354.
    r = Raw(int(E["NOPIPE_PORT"]))
    r.reply()
    r.send(b"EHLO check.example.net\r\n")
    r.reply()
    r.send(b"MAIL FROM:<np@example.net>\r\nRCPT TO:<frank@example.org>\r\nDATA\r\n"
           + message("frank@example.org", "too early", marker()) + b".\r\n")
    codes = [r.reply() for _ in range(3)]
    expect(codes[2][0] == 554 and "5.5.0" in codes[2][1][0], f"data before 354 got {codes}")
    r.close()


def check_submission_requires_tls():
    s = smtp("SUBMISSION_PORT")
    s.ehlo()
    expect(s.has_extn("starttls"), "no STARTTLS on SUBMISSION_PORT")
    expect(not s.has_extn("auth"), "AUTH offered before TLS")
    code, resp = s.mail("x@example.net")
    expect(code == 530, f"MAIL before STARTTLS got {code} {resp!r}")
    s.quit()


def check_submission_mechanisms():
    s = smtp("SUBMISSION_PORT")
    s.ehlo()
    s.starttls(context=tls_context())
    s.ehlo()
    mechs = set(s.esmtp_features.get("auth", "").upper().split())
    expect(mechs == set(E["SASL_MECHANISMS"].split()), f"AUTH after TLS: {mechs}")
    cert = s.sock.getpeercert()
    expect(("DNS", "localhost") in cert["subjectAltName"], f"SAN {cert['subjectAltName']}")
    s.quit()


def submit_and_check_log(s, mech, rcpt="grace@example.com"):
    mark = marker()
    refused = s.sendmail(E["SASL_USER"], [rcpt], message(rcpt, "auth " + mech, mark))
    expect(refused == {}, f"refused {refused}")
    s.quit()
    data = find_delivery(os.path.join(E["MAILDIR_ROOT"], rcpt.split("@")[1]), mark)
    # Postfix logs the SASL method on the smtpd line with the queue id; find
    # the queue id through the Received header.
    qid = re.search(r"id ([0-9A-F]+)", header(data, "Received") or "")
    expect(qid, "queue id in Received")
    lines = maillog_lines(re.escape(qid.group(1)) + r": client=.*sasl_method=" + re.escape(mech) + r"\b")
    expect(lines, f"no sasl_method={mech} log line")
    return data


def check_submission_login_plain():
    data = submit_and_check_log(login_submission("PLAIN"), "PLAIN")
    expect("Authenticated sender: " + E["SASL_USER"] in (header(data, "Received") or ""),
           "Received lacks the authenticated sender")


def check_submission_login_login():
    submit_and_check_log(login_submission("LOGIN"), "LOGIN")


def check_submission_login_cram_md5():
    submit_and_check_log(login_submission("CRAM-MD5"), "CRAM-MD5")


def check_submission_second_user():
    submit_and_check_log(login_submission("PLAIN", E["SASL_USER2"], E["SASL_PASSWORD2"]), "PLAIN")


def check_submission_scram():
    for mech, h in (("SCRAM-SHA-1", "sha1"), ("SCRAM-SHA-256", "sha256")):
        s = smtp("SUBMISSION_PORT")
        s.ehlo()
        s.starttls(context=tls_context())
        s.ehlo()
        code, _ = s.auth(mech, scram_authobject(E["SASL_USER"], E["SASL_PASSWORD"], h))
        expect(code == 235, f"{mech} {code}")
        submit_and_check_log(s, mech)


def check_submission_wrong_password_fast():
    # Dovecot sends failures from a 500 ms timer even with
    # auth_failure_delay = 0, so each one costs up to half a second; what
    # must not happen is the anvil penalty growing 2, 4, 8 ... s.
    for attempt in range(3):  # repeated failures: the anvil penalty must be off
        t0 = time.monotonic()
        try:
            login_submission("PLAIN", password="wrong password")
            raise AssertionError("wrong password accepted")
        except smtplib.SMTPAuthenticationError as e:
            expect(e.smtp_code == 535, f"wrong password got {e.smtp_code} {e.smtp_error!r}")
        took = time.monotonic() - t0
        expect(took < 1.5, f"failed login #{attempt + 1} took {took:.1f} s")


def check_submission_unauthenticated_relay_refused():
    s = smtp("SUBMISSION_PORT")
    s.ehlo()
    s.starttls(context=tls_context())
    s.ehlo()
    try:
        s.sendmail("x@example.net", ["henry@example.org"], message("henry@example.org", "unauth", marker()))
        raise AssertionError("unauthenticated send accepted on SUBMISSION_PORT")
    except smtplib.SMTPRecipientsRefused as e:
        code = e.recipients["henry@example.org"][0]
        expect(code == 554, f"unauthenticated RCPT got {e.recipients}")
    s.quit()


def check_smtps():
    s = smtplib.SMTP_SSL("127.0.0.1", int(E["SMTPS_PORT"]), local_hostname="check.example.net",
                         timeout=IO_TIMEOUT, context=tls_context())
    s.ehlo()
    expect(not s.has_extn("starttls"), "STARTTLS offered inside implicit TLS")
    s.login(E["SASL_USER"], E["SASL_PASSWORD"])
    data = submit_and_check_log(s, "CRAM-MD5")  # smtplib.login prefers CRAM-MD5
    expect("ESMTPSA" in (header(data, "Received") or ""), "Received lacks ESMTPSA")


def oauth_session():
    s = smtp("OAUTH_PORT")
    s.ehlo()
    s.starttls(context=tls_context())
    s.ehlo()
    return s


def xoauth2(user, token):
    sent = {"n": 0}

    def authobject(challenge=None):
        sent["n"] += 1
        # After a failure the server sends a JSON error as a 334 challenge;
        # the client answers with an empty line and gets the final 535.
        return f"user={user}\x01auth=Bearer {token}\x01\x01" if sent["n"] == 1 else ""
    return authobject


def oauthbearer(user, token):
    sent = {"n": 0}

    def authobject(challenge=None):
        sent["n"] += 1
        return f"n,a={user},\x01auth=Bearer {token}\x01\x01" if sent["n"] == 1 else "\x01"
    return authobject


def check_oauth():
    if not E.get("OAUTH_PORT"):
        raise Skip("no OAUTH_PORT")
    s = oauth_session()
    mechs = set(s.esmtp_features.get("auth", "").upper().split())
    expect(mechs == {"XOAUTH2", "OAUTHBEARER"}, f"AUTH on OAUTH_PORT: {mechs}")
    s.auth("XOAUTH2", xoauth2(E["OAUTH_USER"], E["OAUTH_TOKEN"]))
    submit_and_check_log(s, "XOAUTH2")
    s = oauth_session()
    s.auth("OAUTHBEARER", oauthbearer(E["OAUTH_USER"], E["OAUTH_TOKEN"]))
    submit_and_check_log(s, "OAUTHBEARER")
    for flag in ("--expired", "--wrong-key"):
        bad = subprocess.run([E["MINT_TOKEN"], E["STATE_DIR"], E["OAUTH_USER"], flag],
                             check=True, capture_output=True, text=True).stdout.strip()
        for mech, obj in (("XOAUTH2", xoauth2), ("OAUTHBEARER", oauthbearer)):
            s = oauth_session()
            try:
                s.auth(mech, obj(E["OAUTH_USER"], bad))
                raise AssertionError(f"{mech} accepted a token made with {flag}")
            except smtplib.SMTPAuthenticationError as e:
                expect(e.smtp_code == 535, f"{mech} {flag}: {e.smtp_code} {e.smtp_error!r}")
            s.close()
    # A valid token for another user must not log in as alice.
    other = subprocess.run([E["MINT_TOKEN"], E["STATE_DIR"], "bob@example.org"],
                           check=True, capture_output=True, text=True).stdout.strip()
    s = oauth_session()
    try:
        s.auth("XOAUTH2", xoauth2(E["OAUTH_USER"], other))
        raise AssertionError("XOAUTH2 accepted bob's token for alice")
    except smtplib.SMTPAuthenticationError as e:
        expect(e.smtp_code == 535, f"token/user mismatch: {e.smtp_code}")
    s.close()


def lmtp_send(client, rcpt):
    mark = marker()
    client.ehlo_or_helo_if_needed()
    refused = client.sendmail("lmtp@example.net", [rcpt], message(rcpt, "lmtp", mark))
    expect(refused == {}, f"refused {refused}")
    data = find_delivery(os.path.join(E["LMTP_MAILDIR_ROOT"], rcpt), mark, timeout=5)
    expect(header(data, "Delivered-To") == rcpt, f"Delivered-To {header(data, 'Delivered-To')}")


def check_lmtp_tcp():
    c = smtplib.LMTP("127.0.0.1", int(E["LMTP_PORT"]), local_hostname="check.example.net",
                     timeout=IO_TIMEOUT)
    for user in E["LMTP_USERS"].split():
        lmtp_send(c, user)
    try:
        c.sendmail("lmtp@example.net", ["nobody@example.org"], message("nobody@example.org", "x", marker()))
        raise AssertionError("unknown LMTP user accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code = e.recipients["nobody@example.org"][0]
        expect(code == 550, f"unknown user got {e.recipients}")
    c.quit()


def check_lmtp_socket():
    c = smtplib.LMTP(E["LMTP_SOCKET"], local_hostname="check.example.net", timeout=IO_TIMEOUT)
    lmtp_send(c, "alice@example.org")
    c.quit()


def capture_for(mark, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(E["AIOSMTPD_DIR"], "*.eml")):
            with open(path, "rb") as f:
                data = f.read()
            if mark.encode() in data:
                head, raw = data.split(b"\n\n", 1)
                return head.decode("utf-8").split("\n"), raw
        time.sleep(0.05)
    raise AssertionError(f"no capture with {mark}")


def check_aiosmtpd_starttls_raw_bytes():
    mark = marker()
    s = smtp("AIOSMTPD_PORT")
    s.ehlo()
    expect(s.has_extn("starttls") and s.has_extn("smtputf8"), f"aiosmtpd EHLO {s.esmtp_features}")
    s.starttls(context=tls_context())
    s.ehlo()
    body = message("ivy@example.org", "raw", mark) + b".dot line\r\n..two dots\r\n\xc3\xa9 8bit\r\n"
    refused = s.sendmail("ivy-sender@example.net", ["ivy@example.org", "jack@example.com"], body,
                         mail_options=["BODY=8BITMIME"])
    expect(refused == {}, f"refused {refused}")
    s.quit()
    head, raw = capture_for(mark)
    expect(raw == body, f"captured bytes differ:\n{raw!r}\n{body!r}")
    expect(head[0] == f"MAIL FROM:<ivy-sender@example.net> SIZE={len(body)} BODY=8BITMIME", f"MAIL line {head[0]}")
    expect(head[1:3] == ["RCPT TO:<ivy@example.org>", "RCPT TO:<jack@example.com>"], f"RCPT lines {head}")
    expect(any(l.startswith("X-TLS: TLSv1.") for l in head), f"TLS not recorded: {head}")
    expect("X-EHLO: check.example.net" in head, f"EHLO name {head}")


def check_aiosmtpd_implicit_tls_auth():
    mark = marker()
    s = smtplib.SMTP_SSL("127.0.0.1", int(E["AIOSMTPD_TLS_PORT"]), local_hostname="check.example.net",
                         timeout=IO_TIMEOUT, context=tls_context())
    s.ehlo()
    s.user, s.password = E["SASL_USER"], E["SASL_PASSWORD"]
    s.auth("PLAIN", s.auth_plain)
    s.sendmail(E["SASL_USER"], ["kim@example.org"], message("kim@example.org", "tls", mark))
    s.quit()
    head, _ = capture_for(mark)
    expect("X-Auth: " + E["SASL_USER"] in head, f"auth not recorded: {head}")
    expect(any(l.startswith("X-TLS: TLSv1.") for l in head), f"TLS not recorded: {head}")


class Skip(Exception):
    pass


CHECKS = [v for k, v in list(globals().items()) if k.startswith("check_") and callable(v)]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    E.update(load_env(sys.argv[1]))
    passed = failed = skipped = 0
    for check in CHECKS:
        t0 = time.monotonic()
        name = check.__name__[len("check_"):]
        try:
            check()
        except Skip as e:
            skipped += 1
            print(f"SKIP {name}: {e}")
            continue
        except Exception as e:  # report every kind of failure and go on
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if os.environ.get("CHECK_VERBOSE"):
                traceback.print_exc()
            continue
        passed += 1
        print(f"PASS {name} ({time.monotonic() - t0:.2f} s)")
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
