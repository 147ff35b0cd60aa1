"""pysock completion: print the shell completion script (the files in completions/
are this output, committed and installed where each shell looks).

The scripts and the backend that answers them are both pysock's, one line per word,
`type<TAB>value<TAB>help`: click's own scripts change their protocol between click
releases, so an installed script made with one click could not read the answers of
another. The bash script needs no bash-completion package."""

from __future__ import annotations

import click
from click.shell_completion import BashComplete, CompletionItem, FishComplete, ZshComplete

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_PYSOCK_COMPLETE"

BASH = r"""# pysock completion for bash; needs nothing but bash 4.4 or newer:
#   source <(pysock completion bash)
_pysock_completion() {
    local IFS=$'\n' line type value
    local response
    COMPREPLY=()
    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD="$COMP_CWORD" \
        _PYSOCK_COMPLETE=bash_complete "$1") || return 0
    for line in $response; do
        IFS=$'\t' read -r type value _ <<< "$line"
        case $type in
            dir) COMPREPLY=(); compopt -o dirnames; return 0 ;;
            file) COMPREPLY=(); compopt -o default; return 0 ;;
            plain) COMPREPLY+=("$value") ;;
        esac
    done
    return 0
}

complete -o nosort -F _pysock_completion pysock
"""

ZSH = r"""#compdef pysock
# pysock completion for zsh: put this file on $fpath as _pysock before compinit, or
#   source <(pysock completion zsh)    (after compinit)

_pysock_completion() {
    local -a response described plain
    local line type value help
    (( ! $+commands[pysock] )) && return 1
    response=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \
        _PYSOCK_COMPLETE=zsh_complete pysock)}")
    for line in $response; do
        type=${line%%$'\t'*}; line=${line#*$'\t'}
        value=${line%%$'\t'*}; help=${line#*$'\t'}
        case $type in
            dir) _path_files -/ ;;
            file) _path_files -f ;;
            plain)
                if [[ -n $help ]]; then
                    described+=("${value//:/\\:}:$help")
                else
                    plain+=("$value")
                fi ;;
        esac
    done
    (( $#described )) && _describe -V unsorted described -U
    (( $#plain )) && compadd -U -V unsorted -a plain
    return 0
}

# From now on Tab calls _pysock_completion itself. Autoloaded from $fpath (as _pysock),
# this file runs at the first Tab, which it answers too.
compdef _pysock_completion pysock
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _pysock_completion "$@"
fi
"""

FISH = r"""# pysock completion for fish: installed in vendor_completions.d, or
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
"""


def _line(item: CompletionItem) -> str:
    help_text = " ".join((item.help or "").split())  # no tab or newline inside a field
    return f"{item.type}\t{item.value}\t{help_text}"


class _Ours:
    """pysock's script and line format on top of click's reading of the shell's words."""

    script = ""

    def source(self) -> str:
        return self.script

    def format_completion(self, item: CompletionItem) -> str:
        return _line(item)


class Bash(_Ours, BashComplete):
    script = BASH


class Zsh(_Ours, ZshComplete):
    script = ZSH


class Fish(_Ours, FishComplete):
    script = FISH


CLASSES = {"bash": Bash, "zsh": Zsh, "fish": Fish}


def register() -> None:
    """Answer Tab with pysock's classes (before click reads _PYSOCK_COMPLETE)."""
    from click.shell_completion import add_completion_class
    for name, cls in CLASSES.items():
        add_completion_class(cls, name)


@click.command(short_help="Print the bash, zsh or fish completion script.")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> int:
    """Print the completion script for SHELL on stdout. pip installs these scripts
    where bash-completion, zsh and fish look; for other set-ups,
    'source <(pysock completion bash)' (no bash-completion needed),
    'source <(pysock completion zsh)' after compinit, or
    'pysock completion fish | source'. Tab asks pysock itself for words, so
    completion follows the installed version."""
    click.echo(script(shell), nl=False)
    return 0


def script(shell: str) -> str:
    return CLASSES[shell].script
