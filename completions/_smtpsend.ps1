
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
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Relay host name or address ("host:port" and "[v6]:port" work too)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Relay port [default: 25 with --tls none, 587 starttls, 465 tls]')
            [CompletionResult]::new('--tls', '--tls', [CompletionResultType]::ParameterName, 'Connection security [default: starttls]')
            [CompletionResult]::new('--tls-ca-file', '--tls-ca-file', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file, besides the system''s')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Envelope sender address')
            [CompletionResult]::new('--domain', '--domain', [CompletionResultType]::ParameterName, 'Name to give in EHLO [default: this machine''s fully qualified name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for the relay at each step')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Read the message from FILE instead of standard input')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Verbose: show the SMTP conversation on standard error (secrets redacted)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
