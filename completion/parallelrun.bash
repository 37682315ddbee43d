# bash completion for parallelrun                        -*- shell-script -*-
# Subcommands, their options, job files, run ids (from `parallelrun runs`),
# and the options of ad-hoc mode (parallelrun [OPTIONS] CMD ... ::: ...).

_parallelrun_run_ids()
{
    # The first column of `parallelrun runs`, skipping its header; quietly
    # nothing when no run is recorded or Redis is not reachable.
    "${COMP_WORDS[0]}" runs 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]/ { print $1 }'
}

_parallelrun_job_names()
{
    # The NAME column of `parallelrun runs`, each once.
    "${COMP_WORDS[0]}" runs 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]/ && !seen[$2]++ { print $2 }'
}

_parallelrun()
{
    local cur prev words cword
    _init_completion || return

    local subcommands="run validate status runs cancel gc barrier lock
        counter queue progress next segment worker workers"
    local run_opts="--jobs --set --dry-run --tag --results --joblog --quiet
        --json --redis --resume --distributed --worker-wait --help"
    local adhoc_opts="--jobs --keep-order --tag --tagstring --bar --eta
        --halt --retries --timeout --delay --joblog --results --resume
        --resume-failed --dry-run --segment --redis --quiet --json --null
        --shell --quote"

    if [[ $cword -eq 1 ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--help --version $adhoc_opts" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
            COMPREPLY+=($(compgen -c -- "$cur"))
        fi
        return
    fi

    local sub=${words[1]}
    case $sub in
    run | validate)
        case $prev in
        --results) _filedir -d; return ;;
        --joblog) _filedir; return ;;
        --resume) COMPREPLY=($(compgen -W "last $(_parallelrun_run_ids)" -- "$cur")); return ;;
        -j | --jobs | --set | --redis | --worker-wait) return ;;
        esac
        if [[ $cur == -* ]]; then
            if [[ $sub == validate ]]; then
                COMPREPLY=($(compgen -W "--set --help" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$run_opts" -- "$cur"))
            fi
        else
            _filedir '@(yaml|yml)'
        fi
        ;;
    status | cancel)
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--watch --json --redis" -- "$cur"))
        elif [[ $prev != --redis && $sub == status ]]; then
            # A run id, or a job's name (its latest run).
            COMPREPLY=($(compgen -W "$(_parallelrun_run_ids) $(_parallelrun_job_names)" -- "$cur"))
        elif [[ $prev != --redis ]]; then
            COMPREPLY=($(compgen -W "$(_parallelrun_run_ids)" -- "$cur"))
        fi
        ;;
    runs)
        COMPREPLY=($(compgen -W "--json --redis" -- "$cur"))
        ;;
    workers)
        COMPREPLY=($(compgen -W "--redis" -- "$cur"))
        ;;
    worker)
        COMPREPLY=($(compgen -W "--redis --slots --lease --drain-timeout
            --outage" -- "$cur"))
        ;;
    queue)
        [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "push pop" -- "$cur"))
        ;;
    segment)
        if [[ $cword -eq 2 ]]; then
            COMPREPLY=($(compgen -W "publish path" -- "$cur"))
        elif [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--dtype --shape" -- "$cur"))
        else
            _filedir
        fi
        ;;
    barrier | lock | counter | progress | next | gc) ;;
    *)
        # Ad-hoc mode: options, then a command, then ::: sources.
        case $prev in
        --results) _filedir -d; return ;;
        --joblog | ::::) _filedir; return ;;
        --halt) COMPREPLY=($(compgen -W "never soon now soon,fail= now,fail=
            soon,success= now,success= soon,done= now,done=" -- "$cur")); return ;;
        esac
        if [[ $cur == --resume=* ]]; then
            COMPREPLY=($(compgen -P --resume= -W "last $(_parallelrun_run_ids)" -- "${cur#--resume=}"))
        elif [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$adhoc_opts" -- "$cur"))
        else
            _filedir
        fi
        ;;
    esac
} &&
    complete -F _parallelrun parallelrun

# ex: filetype=sh
