complete -c smtpsend -l host -d 'Relay host name or address ("host:port" and "[v6]:port" work too)' -r
complete -c smtpsend -l port -d 'Relay port [default: 25 with --tls none, 587 starttls, 465 tls]' -r
complete -c smtpsend -l tls -d 'Connection security [default: starttls]' -r -f -a "none\t'Plain SMTP; no TLS at all (only for a trusted network or loopback)'
starttls\t'Plain connection upgraded with STARTTLS; refuses to go on without it'
tls\t'TLS from the first byte (implicit TLS, port 465)'"
complete -c smtpsend -l tls-ca-file -d 'Trust the CA certificates in this PEM file, besides the system\'s' -r -F
complete -c smtpsend -s f -d 'Envelope sender address' -r
complete -c smtpsend -l domain -d 'Name to give in EHLO [default: this machine\'s fully qualified name]' -r
complete -c smtpsend -l timeout -d 'Seconds to wait for the relay at each step' -r
complete -c smtpsend -l file -d 'Read the message from FILE instead of standard input' -r -F
complete -c smtpsend -s v -d 'Verbose: show the SMTP conversation on standard error (secrets redacted)'
complete -c smtpsend -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smtpsend -s V -l version -d 'Print version'
