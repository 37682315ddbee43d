#!/usr/bin/env bats
# Documentation where users look: the man pages render without a warning,
# --help and parallelrun(1) list the same options, make install puts the
# pages and the bash completion in place, and the completion completes.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

# The long options a text mentions, one per line, sorted.
long_opts() {
    grep -o -- '--[a-z][a-z-]*' | sort -u
}

# complete_words WORD...: what the bash completion offers for the command
# line WORD... (the last word is the one being completed).
complete_words() {
    bash -c '
        source /usr/share/bash-completion/bash_completion
        source "$1/completion/parallelrun.bash"
        shift
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        _parallelrun
        printf "%s\n" "${COMPREPLY[@]}"
    ' bash "$ROOT" "$@"
}

@test "man: both pages render with man -l without a warning" {
    for src in docs/man/parallelrun.1.scd docs/man/parallelrun-job.5.scd; do
        page=$T/$(basename "$src" .scd)
        scdoc < "$src" > "$page"
        run bash -c "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$page' 2>&1 >/dev/null"
        [ "$status" -eq 0 ]
        [ -z "$output" ]
        # Not vacuous: the page has its sections.
        run bash -c "LC_ALL=C.UTF-8 MANWIDTH=80 man -l '$page' 2>/dev/null"
        [[ "$output" == *"NAME"* ]]
        [[ "$output" == *"DESCRIPTION"* ]]
    done
    run bash -c "MANWIDTH=80 man -l '$T/parallelrun.1' 2>/dev/null"
    for s in "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "AD-HOC MODE" \
        "COMMANDS INSIDE A TASK" PARALLELRUN_SLOT; do
        [[ "$output" == *"$s"* ]]
    done
}

@test "man: --help and parallelrun(1) list the same options" {
    scdoc < docs/man/parallelrun.1.scd > "$T/parallelrun.1"
    "$PR" --help | long_opts > "$T/help.opts"
    MANWIDTH=1000 man -l "$T/parallelrun.1" 2>/dev/null | long_opts > "$T/man.opts"
    # Both name the ad-hoc options and the run options.
    grep -qx -- --keep-order "$T/help.opts"
    grep -qx -- --resume "$T/help.opts"
    [ "$(wc -l < "$T/help.opts")" -ge 25 ]
    run diff "$T/help.opts" "$T/man.opts"
    [ "$status" -eq 0 ]
}

@test "man: make install puts the pages and the bash completion in place" {
    run make -s install PREFIX=/opt/prun DESTDIR="$T/root" BUILD="$PRUN_BUILD"
    [ "$status" -eq 0 ]
    R=$T/root/opt/prun
    [ -f "$R/share/man/man1/parallelrun.1" ]
    [ -f "$R/share/man/man5/parallelrun-job.5" ]
    [ -f "$R/share/bash-completion/completions/parallelrun" ]
    [ -f "$R/share/zsh/site-functions/_parallelrun" ]
    run bash -c "MANWIDTH=80 man -l '$R/share/man/man1/parallelrun.1' 2>/dev/null"
    [[ "$output" == *"AD-HOC MODE"* ]]
    run make -s uninstall PREFIX=/opt/prun DESTDIR="$T/root" BUILD="$PRUN_BUILD"
    [ ! -e "$R/share/man/man1/parallelrun.1" ]
    [ ! -e "$R/share/bash-completion/completions/parallelrun" ]
    [ ! -e "$R/share/zsh/site-functions/_parallelrun" ]
}

@test "completion: the zsh completion parses (zsh -n)" {
    command -v zsh >/dev/null || skip "no zsh"
    run zsh -n "$ROOT/completion/_parallelrun"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
}

@test "completion: subcommands, options, job files and run ids" {
    [ -f /usr/share/bash-completion/bash_completion ] || skip "no bash-completion"
    run complete_words parallelrun st
    [[ "$output" == *status* ]]
    [[ "$output" != *validate* ]]
    run complete_words parallelrun run x.yaml --re
    [[ "$output" == *--results* ]]
    [[ "$output" == *--resume* ]]
    run complete_words parallelrun --kee
    [ "$output" = "--keep-order" ]
    mkdir -p "$T/w" && touch "$T/w/a.yaml" "$T/w/b.txt"
    run bash -c "cd '$T/w' && $(declare -f complete_words); ROOT='$ROOT' complete_words parallelrun run ''"
    [[ "$output" == *a.yaml* ]]
    [[ "$output" != *b.txt* ]]
    # Run ids come from `parallelrun runs` (a stand-in prints a table).
    cat > "$T/fakepr" <<'SH'
#!/bin/sh
[ "$1" = runs ] || exit 2
echo "RUN                    NAME                 STATE"
echo "20261202-101010-ab12   nightly              succeeded"
echo "20261202-111111-cd34   echo                 failed"
SH
    chmod +x "$T/fakepr"
    run complete_words "$T/fakepr" status 2026
    [[ "$output" == *20261202-101010-ab12* ]]
    [[ "$output" == *20261202-111111-cd34* ]]
    [[ "$output" != *RUN* ]]
    # status JOB: job names from the same table; --resume last.
    run complete_words "$T/fakepr" status nig
    [ "$output" = nightly ]
    run complete_words "$T/fakepr" status ''
    [[ "$output" == *nightly* ]]
    [[ "$output" != *NAME* ]]
    run complete_words "$T/fakepr" run x.yaml --resume l
    [ "$output" = last ]
    run complete_words "$T/fakepr" cancel nig
    [ -z "$output" ]
}
