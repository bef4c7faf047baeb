complete -c smtpsend -s f -d 'Envelope sender address ("" or "<>" for the null sender)' -r
complete -c smtpsend -s F -d 'Full name for the From header that is added when the message has none' -r
complete -c smtpsend -s N -d 'DSN: when to notify the sender: "never", or a comma list of "success", "failure", "delay"' -r
complete -c smtpsend -s R -d 'DSN: return the "full" message or only its "hdrs" in a bounce' -r
complete -c smtpsend -s V -d 'DSN: the envelope identifier' -r
complete -c smtpsend -s B -d 'Body type: 7BIT or 8BITMIME (the body is scanned anyway)' -r -f -a "7BIT\t''
8BITMIME\t''"
complete -c smtpsend -s b -d 'Mode: -bm deliver (default), -bp list the queue, -bs speak SMTP on standard input and output, -bi rebuild aliases (nothing to do)' -r -f -a "m\t''
p\t''
s\t''
i\t''"
complete -c smtpsend -s o -d 'Sendmail -o options: -oi is -i; the others (-oem, -odi, -oQ...) are accepted and ignored' -r
complete -c smtpsend -s C -d 'Configuration file to use instead of the usual lookup (under the sendmail name only from the system\'s allow_config_dirs: see SECURITY)' -r -F
complete -c smtpsend -s L -d 'Tag for log lines' -r
complete -c smtpsend -s X -l log-file -d 'Log file: one line per message (ignored under the sendmail name: see SECURITY)' -r -F
complete -c smtpsend -l log-format -d 'Log lines as key=value text or as JSON objects (the profile\'s log_format) [default: text]' -r -f -a "text\t'`key=value` pairs, as Postfix and msmtp write them'
json\t'One JSON object per line, for log shippers'"
complete -c smtpsend -s a -l profile -d 'Profile to use from the configuration file' -r
complete -c smtpsend -l host -d 'Relay host name or address; "host:port" and a bracketed IPv6 address with a port work too' -r
complete -c smtpsend -l port -d 'Relay port [default: 25 with --tls none, 587 starttls, 465 tls]' -r
complete -c smtpsend -l tls -d 'Connection security [default: starttls]' -r -f -a "none\t'Plain SMTP; no TLS at all (only for a trusted network or loopback)'
starttls\t'Plain connection upgraded with STARTTLS; refuses to go on without it'
tls\t'TLS from the first byte (implicit TLS, port 465)'"
complete -c smtpsend -l protocol -d 'Speak SMTP or LMTP to the relay (the profile\'s transport) [default: smtp]' -r -f -a "smtp\t'SMTP submission (the default)'
lmtp\t'LMTP (RFC 2033), to a local delivery agent such as Dovecot'"
complete -c smtpsend -l tls-verify -d 'Verify the relay\'s certificate and name [default: true]' -r -f -a "true\t''
false\t''"
complete -c smtpsend -l tls-ca-file -d 'Trust the CA certificates in this PEM file, besides the system\'s' -r -F
complete -c smtpsend -l auth -d 'Authentication: auto, none, or a mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, EXTERNAL)' -r
complete -c smtpsend -l user -d 'User name to authenticate as' -r
complete -c smtpsend -l password-command -d 'Command whose output is the password or token (run with sh -c; one trailing newline removed). $SMTPSEND_PASSWORD is used when no other source is set. Refused under the sendmail name, as are the other relay and file options (see SECURITY)' -r
complete -c smtpsend -l from -d 'Envelope sender (the same as -f)' -r
complete -c smtpsend -l domain -d 'Name to give in EHLO and for Message-ID and bare local names [default: this machine\'s fully qualified name]' -r
complete -c smtpsend -l timeout -d 'Seconds to wait for the relay at each step, the reply to the end of the message included [default: 60, and 600 for that reply]; with -bs, also for the client\'s next line [default: 300 with -bs]' -r
complete -c smtpsend -l file -d 'Read the message from FILE instead of standard input ("." lines are then ordinary data)' -r -F
complete -c smtpsend -l queue-delete -d 'Remove a message from the queue' -r
complete -c smtpsend -s t -d 'Read recipients from the message\'s To, Cc and Bcc headers (or one Resent- block); Bcc is removed before sending'
complete -c smtpsend -s i -d 'A line with a single "." does not end the message (also -oi)'
complete -c smtpsend -s q -l queue-run -d 'Deliver the queued messages that are due (-q), as sendmail -q'
complete -c smtpsend -s v -d 'Verbose: show the SMTP conversation on standard error (secrets redacted)'
complete -c smtpsend -s G -d 'Accepted and ignored, as Postfix does (-G gateway submission)'
complete -c smtpsend -s U -d 'Accepted and ignored, as Postfix does (-U initial submission)'
complete -c smtpsend -s n -d 'Accepted and ignored (-n: do not expand aliases)'
complete -c smtpsend -l no-bdat -d 'Send with DATA even when the relay offers CHUNKING (the profile\'s bdat = false)'
complete -c smtpsend -l read-envelope-from -d 'Take the envelope sender from the message\'s Sender or From header when no -f is given'
complete -c smtpsend -l debug -d 'Show the whole SMTP conversation with timestamps (secrets redacted)'
complete -c smtpsend -l dry-run -d 'Print the profile, the envelope and the message as it would be sent; send nothing. With -q or --queue-flush: list the messages that would be tried'
complete -c smtpsend -l serverinfo -d 'Connect and print what the relay offers: greeting, TLS certificate, extensions and AUTH mechanisms, before and after STARTTLS'
complete -c smtpsend -l queue-list -d 'List the queue (the same as -bp and mailq)'
complete -c smtpsend -l queue-flush -d 'Retry every queued message now, ignoring the backoff'
complete -c smtpsend -l queue-retrier -d 'Internal: run as the detached queue retrier a submission leaves behind (see src/retrier.rs); the rest of argv is the submission\'s'
complete -c smtpsend -l no-queue -d 'Do not keep the message on a temporary failure: exit 75 and leave it to the caller (the profile\'s queue = false)'
complete -c smtpsend -l strict-recipients -d 'Exit 67 when the relay refuses some recipients (by default the message goes to the others and the refused are reported)'
complete -c smtpsend -l version -d 'Print the version'
complete -c smtpsend -s h -l help -d 'Print help (see more with \'--help\')'
