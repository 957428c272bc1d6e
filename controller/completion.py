"""Bash completion for barrierctl: commands from the parser, device and lane names from the running barrierd."""

from __future__ import annotations

SCRIPT = r"""# barrierctl completion for bash: eval "$(barrierctl completion bash)" (e.g. in ~/.bashrc)
_barrierctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} i command="" socket=() position=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --socket) socket=(--socket "${COMP_WORDS[i+1]}"); ((i++)) ;;
            -*) ;;
            *) [ -z "$command" ] && command=${COMP_WORDS[i]} || ((position++)) ;;
        esac
    done
    if [ -z "$command" ]; then
        COMPREPLY=($(compgen -W "@COMMANDS@" -- "$cur")); return
    fi
    local words=""
    case "$command" in
        @DEVICE_VERBS@) [ $position -eq 0 ] && words=$(barrierctl "${socket[@]}" names devices --verb "$command" 2>/dev/null)
            words="$words --wait" ;;
        lane) [ $position -eq 0 ] && words="open secure" || words="$(barrierctl "${socket[@]}" names lanes 2>/dev/null) --wait" ;;
        maintenance) [ $position -eq 0 ] && words="enter exit" || words="$(barrierctl "${socket[@]}" names lanes 2>/dev/null) --reason" ;;
        lockdown) [ "${COMP_WORDS[COMP_CWORD-1]}" = "--lane" ] && words=$(barrierctl "${socket[@]}" names lanes 2>/dev/null) \
            || words="release --lane --reason --json" ;;
        status|alarms) words="--json" ;;
        events) words="--json --follow --limit" ;;
        audit) words="verify --json" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _barrierctl barrierctl
"""


def bash_script(commands: list[str], device_verbs: list[str]) -> str:
    visible = [c for c in commands if c != "names"]
    return SCRIPT.replace("@COMMANDS@", " ".join(visible)).replace("@DEVICE_VERBS@", "|".join(device_verbs))


def names(status: dict, what: str, verb: str | None) -> list[str]:
    """Device names (those that take `verb`, if given) or lane names, from a status reply."""
    if what == "lanes":
        return [lane["name"] for lane in status.get("lanes", [])]
    return [d["name"] for d in status.get("devices", []) if verb is None or verb in d.get("verbs", [])]
