#!/usr/bin/env bats
# make install honours PREFIX and DESTDIR, a C program builds against the
# installed library with pkg-config alone, the shared library exports the
# public API and nothing else, and a change of build settings rebuilds.

load helpers

# The builds here are the file's own: nothing of an outer make (make test
# WERROR=1 passes its variables down through MAKEFLAGS) may change them.
unset MAKEFLAGS MFLAGS MAKELEVEL WERROR SANITIZE OPT CFLAGS LDFLAGS

# One build of the tree of its own for the file (the suite's build/ is not
# touched); each test that changes it works on a copy.
setup_file() {
    B0=$BATS_FILE_TMPDIR/build
    export B0
    make -s -j2 -C "$BATS_TEST_DIRNAME/../.." BUILD="$B0" all >&2
}

setup() { common_setup; }
teardown() { common_teardown; }

# The names include/parallelrun.h declares, one a line, sorted.
declared_api() {
    grep -oE '^PRUN_API [^(]*\bprun_[a-z_]+\(' "$ROOT/include/parallelrun.h" |
        grep -oE 'prun_[a-z_]+' | sort
}

@test "make install PREFIX after a plain make: the .pc names that PREFIX" {
    B=$T/build
    cp -a "$B0" "$B"
    run make -s BUILD="$B" install PREFIX="$T/x"
    [ "$status" -eq 0 ]
    R=$T/x
    [ -x "$R/bin/parallelrun" ]
    [ -f "$R/include/parallelrun.h" ]
    [ -f "$R/lib/libparallelrun.a" ]
    [ -L "$R/lib/libparallelrun.so" ]
    grep -qx "prefix=$R" "$R/lib/pkgconfig/parallelrun.pc"
    export PKG_CONFIG_PATH=$R/lib/pkgconfig
    run pkg-config --cflags --libs parallelrun
    [ "$status" -eq 0 ]
    [[ "$output" == *"-I$R/include"* ]]
    [[ "$output" == *"-L$R/lib"* ]]
    # Linked against the shared library, the example runs: with no run
    # around it, it reports the missing environment and fails cleanly.
    # shellcheck disable=SC2046
    cc -o "$T/sync_demo" examples/c/sync_demo.c \
        $(pkg-config --cflags --libs parallelrun)
    run env LD_LIBRARY_PATH="$R/lib" ldd "$T/sync_demo"
    [[ "$output" == *"$R/lib/libparallelrun.so.0"* ]]
    run env LD_LIBRARY_PATH="$R/lib" "$T/sync_demo"
    [ "$status" -ne 0 ]
    [ "$status" -lt 128 ]
    [[ "$output" == *PARALLELRUN_* ]]
    # Statically too, with Libs.private and Requires.private.
    # shellcheck disable=SC2046
    cc -o "$T/sync_demo_static" examples/c/sync_demo.c \
        $(pkg-config --cflags --libs --static parallelrun | \
            sed 's/-lparallelrun/-l:libparallelrun.a/')
    [ -x "$T/sync_demo_static" ]
    run "$R/bin/parallelrun" --version
    [ "$status" -eq 0 ]
}

@test "make install DESTDIR: the .pc names PREFIX, never the staging root" {
    B=$T/build
    cp -a "$B0" "$B"
    run make -s BUILD="$B" install PREFIX=/opt/prun DESTDIR="$T/root"
    [ "$status" -eq 0 ]
    R=$T/root/opt/prun
    [ -x "$R/bin/parallelrun" ]
    grep -qx "prefix=/opt/prun" "$R/lib/pkgconfig/parallelrun.pc"
    ! grep -q "$T" "$R/lib/pkgconfig/parallelrun.pc"
}

@test "libparallelrun.so exports exactly the API of parallelrun.h" {
    want=$(declared_api)
    [ "$(echo "$want" | wc -l)" -ge 11 ]
    have=$(nm -D --defined-only "$PRUN_BUILD/libparallelrun.so" |
        awk '{ print $3 }' | sort)
    [ "$have" = "$want" ]
    # The child side needs hiredis only: no YAML or INI parser comes along.
    run env LD_LIBRARY_PATH= ldd "$PRUN_BUILD/libparallelrun.so"
    [[ "$output" == *libhiredis* ]]
    [[ "$output" != *libyaml* ]]
    [[ "$output" != *libinih* ]]
}

@test "a change of build settings rebuilds; the same settings do not" {
    B=$T/build
    cp -a "$B0" "$B"
    run make -n BUILD="$B" all
    [[ "$output" != *" -c "* ]]
    for v in 'OPT=-O0 -g' WERROR=1 'CFLAGS=-DPRUN_X=1' SANITIZE=1 'CC=gcc'; do
        run make -n BUILD="$B" "$v" all
        [[ "$output" == *" -c -o $B/lib/util.o"* ]] || {
            echo "$v did not rebuild: $output"
            false
        }
        # make -n changed nothing: the build is still up to date.
        run make -n BUILD="$B" all
        [[ "$output" != *" -c "* ]]
    done
    # A real build with other settings rebuilds, and records them.
    run make -s BUILD="$B" OPT=-O1 "$B/lib/util.o"
    [ "$status" -eq 0 ]
    grep -q -- "-O1" "$B/.make-settings"
    run make -n BUILD="$B" OPT=-O1 "$B/lib/util.o"
    [[ "$output" != *" -c "* ]]
}
