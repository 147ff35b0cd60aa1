# pysock completion for fish: installed in vendor_completions.d, or
#   pysock completion fish | source
function _pysock_completion
    set -l response (env _PYSOCK_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) \
        COMP_CWORD=(commandline -t) pysock)
    for line in $response
        set -l fields (string split -m 2 \t -- $line)
        switch "$fields[1]"
            case dir
                __fish_complete_directories $fields[2]
            case file
                __fish_complete_path $fields[2]
            case plain
                if test -n "$fields[3]"
                    printf '%s\t%s\n' $fields[2] $fields[3]
                else
                    printf '%s\n' $fields[2]
                end
        end
    end
end

complete --no-files --command pysock --arguments "(_pysock_completion)"
