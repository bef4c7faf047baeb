
use builtin;
use str;

set edit:completion:arg-completer[smtpsend] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'smtpsend'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'smtpsend'= {
            cand -f 'Envelope sender address ("" or "<>" for the null sender)'
            cand -F 'Full name for the From header that is added when the message has none'
            cand -N 'DSN: when to notify the sender: "never", or a comma list of "success", "failure", "delay"'
            cand -R 'DSN: return the "full" message or only its "hdrs" in a bounce'
            cand -V 'DSN: the envelope identifier'
            cand -B 'Body type: 7BIT or 8BITMIME (the body is scanned anyway)'
            cand -b 'Mode: -bm deliver (default), -bp list the queue, -bs speak SMTP on standard input and output, -bi rebuild aliases (nothing to do)'
            cand -o 'Sendmail -o options: -oi is -i; the others (-oem, -odi, -oQ...) are accepted and ignored'
            cand -C 'Configuration file to use instead of the usual lookup (under the sendmail name only from the system''s allow_config_dirs: see SECURITY)'
            cand -L 'Tag for log lines'
            cand -X 'Log file: one line per message (ignored under the sendmail name: see SECURITY)'
            cand --log-file 'Log file: one line per message (ignored under the sendmail name: see SECURITY)'
            cand --log-format 'Log lines as key=value text or as JSON objects (the profile''s log_format) [default: text]'
            cand -a 'Profile to use from the configuration file'
            cand --profile 'Profile to use from the configuration file'
            cand --host 'Relay host name or address; "host:port" and a bracketed IPv6 address with a port work too'
            cand --port 'Relay port [default: 25 with --tls none, 587 starttls, 465 tls]'
            cand --tls 'Connection security [default: starttls]'
            cand --protocol 'Speak SMTP or LMTP to the relay (the profile''s transport) [default: smtp]'
            cand --tls-verify 'Verify the relay''s certificate and name [default: true]'
            cand --tls-ca-file 'Trust the CA certificates in this PEM file, besides the system''s'
            cand --auth 'Authentication: auto, none, or a mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, EXTERNAL)'
            cand --user 'User name to authenticate as'
            cand --password-command 'Command whose output is the password or token (run with sh -c; one trailing newline removed). $SMTPSEND_PASSWORD is used when no other source is set. Refused under the sendmail name, as are the other relay and file options (see SECURITY)'
            cand --from 'Envelope sender (the same as -f)'
            cand --domain 'Name to give in EHLO and for Message-ID and bare local names [default: this machine''s fully qualified name]'
            cand --timeout 'Seconds to wait for the relay at each step, the reply to the end of the message included [default: 60, and 600 for that reply]; with -bs, also for the client''s next line [default: 300 with -bs]'
            cand --file 'Read the message from FILE instead of standard input ("." lines are then ordinary data)'
            cand --queue-delete 'Remove a message from the queue'
            cand -t 'Read recipients from the message''s To, Cc and Bcc headers (or one Resent- block); Bcc is removed before sending'
            cand -i 'A line with a single "." does not end the message (also -oi)'
            cand -q 'Deliver the queued messages that are due (-q), as sendmail -q'
            cand --queue-run 'Deliver the queued messages that are due (-q), as sendmail -q'
            cand -v 'Verbose: show the SMTP conversation on standard error (secrets redacted)'
            cand -G 'Accepted and ignored, as Postfix does (-G gateway submission)'
            cand -U 'Accepted and ignored, as Postfix does (-U initial submission)'
            cand -n 'Accepted and ignored (-n: do not expand aliases)'
            cand --no-bdat 'Send with DATA even when the relay offers CHUNKING (the profile''s bdat = false)'
            cand --read-envelope-from 'Take the envelope sender from the message''s Sender or From header when no -f is given'
            cand --debug 'Show the whole SMTP conversation with timestamps (secrets redacted)'
            cand --dry-run 'Print the profile, the envelope and the message as it would be sent; send nothing. With -q or --queue-flush: list the messages that would be tried'
            cand --serverinfo 'Connect and print what the relay offers: greeting, TLS certificate, extensions and AUTH mechanisms, before and after STARTTLS'
            cand --queue-list 'List the queue (the same as -bp and mailq)'
            cand --queue-flush 'Retry every queued message now, ignoring the backoff'
            cand --queue-retrier 'Internal: run as the detached queue retrier a submission leaves behind (see src/retrier.rs); the rest of argv is the submission''s'
            cand --no-queue 'Do not keep the message on a temporary failure: exit 75 and leave it to the caller (the profile''s queue = false)'
            cand --strict-recipients 'Exit 67 when the relay refuses some recipients (by default the message goes to the others and the refused are reported)'
            cand --version 'Print the version'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
    ]
    $completions[$command]
}
