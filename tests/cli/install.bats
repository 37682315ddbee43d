#!/usr/bin/env bats
# make install honours PREFIX and DESTDIR, and a C program builds against
# the installed library with pkg-config alone.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

@test "make install: binary, header, libraries and a working parallelrun.pc" {
    run make -s install PREFIX=/opt/prun DESTDIR="$T/root" BUILD="$PRUN_BUILD"
    [ "$status" -eq 0 ]
    R=$T/root/opt/prun
    [ -x "$R/bin/parallelrun" ]
    [ -f "$R/include/parallelrun.h" ]
    [ -f "$R/lib/libparallelrun.a" ]
    [ -L "$R/lib/libparallelrun.so" ]
    # The .pc names the final prefix, not DESTDIR: point it at the staging.
    sed "s|^prefix=.*|prefix=$R|" "$R/lib/pkgconfig/parallelrun.pc" > "$T/parallelrun.pc"
    run env PKG_CONFIG_PATH="$T" pkg-config --cflags --libs --static parallelrun
    [ "$status" -eq 0 ]
    [[ "$output" == *"-I$R/include"* ]]
    cc -o "$T/sync_demo" examples/c/sync_demo.c \
        $(PKG_CONFIG_PATH="$T" pkg-config --cflags --libs --static parallelrun)
    [ -x "$T/sync_demo" ]
    run "$R/bin/parallelrun" --version
    [ "$status" -eq 0 ]
}
