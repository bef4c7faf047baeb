
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
            cand --host 'Relay host name or address ("host:port" and "[v6]:port" work too)'
            cand --port 'Relay port [default: 25 with --tls none, 587 starttls, 465 tls]'
            cand --tls 'Connection security [default: starttls]'
            cand --tls-ca-file 'Trust the CA certificates in this PEM file, besides the system''s'
            cand -f 'Envelope sender address'
            cand --domain 'Name to give in EHLO [default: this machine''s fully qualified name]'
            cand --timeout 'Seconds to wait for the relay at each step'
            cand --file 'Read the message from FILE instead of standard input'
            cand -v 'Verbose: show the SMTP conversation on standard error (secrets redacted)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
    ]
    $completions[$command]
}
