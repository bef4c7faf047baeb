
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'smtpsend' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'smtpsend'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'smtpsend' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Envelope sender address ("" or "<>" for the null sender)')
            [CompletionResult]::new('-F', '-F ', [CompletionResultType]::ParameterName, 'Full name for the From header that is added when the message has none')
            [CompletionResult]::new('-N', '-N ', [CompletionResultType]::ParameterName, 'DSN: when to notify the sender: "never", or a comma list of "success", "failure", "delay"')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'DSN: return the "full" message or only its "hdrs" in a bounce')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'DSN: the envelope identifier')
            [CompletionResult]::new('-B', '-B ', [CompletionResultType]::ParameterName, 'Body type: 7BIT or 8BITMIME (the body is scanned anyway)')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Mode: -bm deliver (default), -bp list the queue, -bs speak SMTP on standard input and output, -bi rebuild aliases (nothing to do)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Sendmail -o options: -oi is -i; the others (-oem, -odi, -oQ...) are accepted and ignored')
            [CompletionResult]::new('-C', '-C ', [CompletionResultType]::ParameterName, 'Configuration file to use instead of the usual lookup (under the sendmail name only from the system''s allow_config_dirs: see SECURITY)')
            [CompletionResult]::new('-L', '-L ', [CompletionResultType]::ParameterName, 'Tag for log lines')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Log file: one line per message (ignored under the sendmail name: see SECURITY)')
            [CompletionResult]::new('--log-file', '--log-file', [CompletionResultType]::ParameterName, 'Log file: one line per message (ignored under the sendmail name: see SECURITY)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as key=value text or as JSON objects (the profile''s log_format) [default: text]')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Profile to use from the configuration file')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use from the configuration file')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Relay host name or address; "host:port" and a bracketed IPv6 address with a port work too')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Relay port [default: 25 with --tls none, 587 starttls, 465 tls]')
            [CompletionResult]::new('--tls', '--tls', [CompletionResultType]::ParameterName, 'Connection security [default: starttls]')
            [CompletionResult]::new('--protocol', '--protocol', [CompletionResultType]::ParameterName, 'Speak SMTP or LMTP to the relay (the profile''s transport) [default: smtp]')
            [CompletionResult]::new('--tls-verify', '--tls-verify', [CompletionResultType]::ParameterName, 'Verify the relay''s certificate and name [default: true]')
            [CompletionResult]::new('--tls-ca-file', '--tls-ca-file', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file, besides the system''s')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Authentication: auto, none, or a mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, EXTERNAL)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'User name to authenticate as')
            [CompletionResult]::new('--password-command', '--password-command', [CompletionResultType]::ParameterName, 'Command whose output is the password or token (run with sh -c; one trailing newline removed). $SMTPSEND_PASSWORD is used when no other source is set. Refused under the sendmail name, as are the other relay and file options (see SECURITY)')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Envelope sender (the same as -f)')
            [CompletionResult]::new('--domain', '--domain', [CompletionResultType]::ParameterName, 'Name to give in EHLO and for Message-ID and bare local names [default: this machine''s fully qualified name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for the relay at each step, the reply to the end of the message included [default: 60, and 600 for that reply]; with -bs, also for the client''s next line [default: 300 with -bs]')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Read the message from FILE instead of standard input ("." lines are then ordinary data)')
            [CompletionResult]::new('--queue-delete', '--queue-delete', [CompletionResultType]::ParameterName, 'Remove a message from the queue')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Read recipients from the message''s To, Cc and Bcc headers (or one Resent- block); Bcc is removed before sending')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'A line with a single "." does not end the message (also -oi)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Deliver the queued messages that are due (-q), as sendmail -q')
            [CompletionResult]::new('--queue-run', '--queue-run', [CompletionResultType]::ParameterName, 'Deliver the queued messages that are due (-q), as sendmail -q')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Verbose: show the SMTP conversation on standard error (secrets redacted)')
            [CompletionResult]::new('-G', '-G ', [CompletionResultType]::ParameterName, 'Accepted and ignored, as Postfix does (-G gateway submission)')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Accepted and ignored, as Postfix does (-U initial submission)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Accepted and ignored (-n: do not expand aliases)')
            [CompletionResult]::new('--no-bdat', '--no-bdat', [CompletionResultType]::ParameterName, 'Send with DATA even when the relay offers CHUNKING (the profile''s bdat = false)')
            [CompletionResult]::new('--read-envelope-from', '--read-envelope-from', [CompletionResultType]::ParameterName, 'Take the envelope sender from the message''s Sender or From header when no -f is given')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Show the whole SMTP conversation with timestamps (secrets redacted)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the profile, the envelope and the message as it would be sent; send nothing. With -q or --queue-flush: list the messages that would be tried')
            [CompletionResult]::new('--serverinfo', '--serverinfo', [CompletionResultType]::ParameterName, 'Connect and print what the relay offers: greeting, TLS certificate, extensions and AUTH mechanisms, before and after STARTTLS')
            [CompletionResult]::new('--queue-list', '--queue-list', [CompletionResultType]::ParameterName, 'List the queue (the same as -bp and mailq)')
            [CompletionResult]::new('--queue-flush', '--queue-flush', [CompletionResultType]::ParameterName, 'Retry every queued message now, ignoring the backoff')
            [CompletionResult]::new('--queue-retrier', '--queue-retrier', [CompletionResultType]::ParameterName, 'Internal: run as the detached queue retrier a submission leaves behind (see src/retrier.rs); the rest of argv is the submission''s')
            [CompletionResult]::new('--no-queue', '--no-queue', [CompletionResultType]::ParameterName, 'Do not keep the message on a temporary failure: exit 75 and leave it to the caller (the profile''s queue = false)')
            [CompletionResult]::new('--strict-recipients', '--strict-recipients', [CompletionResultType]::ParameterName, 'Exit 67 when the relay refuses some recipients (by default the message goes to the others and the refused are reported)')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print the version')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
