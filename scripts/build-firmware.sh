#!/usr/bin/env bash
# Builds the static `postroom` binary for the firmware targets and prints each size.
# The firmware binary, stripped, is target/firmware/<target>/postroom; cargo's own
# target/<target>/release/postroom keeps its symbols (scripts/profile-symbol-order.sh reads them).
#
# Needs: rustup's x86_64-unknown-linux-musl and aarch64-unknown-linux-musl targets
# (`rustup target add ...`), gcc for the C parts of crates on x86_64, and Debian's
# gcc-aarch64-linux-gnu for them on aarch64 (its binutils strip the aarch64 binary). Both link
# with lld, which ships with rustc.
# `cross` is not used: it needs a container engine (Cross.toml is there for those who have one).
#
# Usage: scripts/build-firmware.sh [TARGET...]   (default: both targets)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
fi

# C code in dependencies (ring) is compiled for musl with the host's gcc or the aarch64
# cross gcc; both produce freestanding objects that the static link accepts.
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-gcc}"
export CC_aarch64_unknown_linux_musl="${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}"
export AR_aarch64_unknown_linux_musl="${AR_aarch64_unknown_linux_musl:-aarch64-linux-gnu-ar}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld}"

# Reproducible: no absolute paths of this machine in the binary.
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=/postroom --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
# The binary stays a static PIE (the musl targets' default), so it keeps ASLR. A non-PIE build
# (-C relocation-model=static) was measured: it saves the relocated pages each process writes,
# but they only become shared file pages, so summed VmRSS does not fall (docs/PERFORMANCE.md
# "Memory").

# Relative relocations packed (DT_RELR, which musl's static-PIE start code applies): the table
# the start code reads in every process shrinks from about 280 KiB to a few KiB, and with it
# each process's resident memory (docs/PERFORMANCE.md "Memory").
relr_flags() {
    case "$1" in
    aarch64-*) echo "-C link-arg=-zpack-relative-relocs" ;; # rust-lld is the linker
    *) echo "-C link-arg=-Wl,-z,pack-relative-relocs" ;;    # gcc drives GNU ld
    esac
}
# The functions laid out in the order of board/symbol-order/<target>.txt (written by
# scripts/profile-symbol-order.sh): what each process runs sits together, so each maps a few
# MiB less of the binary. lld does the ordering; on x86_64 gcc is told to use rustc's own lld.
# A name the file has and the binary does not (the code changed since the profile) is skipped.
# POSTROOM_SYMBOL_ORDER=none builds without it.
order_flags() {
    local file="$PWD/board/symbol-order/$1.txt"
    [ "${POSTROOM_SYMBOL_ORDER:-}" != none ] && [ -s "$file" ] || return 0
    case "$1" in
    aarch64-*)
        echo "-C link-arg=--symbol-ordering-file=$file -C link-arg=--no-warn-symbol-ordering"
        ;;
    *)
        local gcc_ld
        gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
        echo "-C link-arg=-fuse-ld=lld -C link-arg=-B$gcc_ld" \
            "-C link-arg=-Wl,--symbol-ordering-file=$file -C link-arg=-Wl,--no-warn-symbol-ordering"
        ;;
    esac
}
base_rustflags=$RUSTFLAGS

# Symbols are kept in cargo's build and stripped from a copy afterwards: cargo counts the
# profile's `strip` into every crate's symbol hashes, so a build with `strip = true` would name
# its functions differently from the profiled build, and lld would find none of the order.
export CARGO_PROFILE_RELEASE_STRIP=false

strip_tool() {
    case "$1" in
    aarch64-*) echo aarch64-linux-gnu-strip ;;
    *) echo strip ;;
    esac
}

for target in "${targets[@]}"; do
    RUSTFLAGS="$base_rustflags $(relr_flags "$target") $(order_flags "$target")" \
        cargo build --release --locked -p postroom --target "$target"
    out="${CARGO_TARGET_DIR:-target}/firmware/$target"
    mkdir -p "$out"
    "$(strip_tool "$target")" --strip-all -o "$out/postroom.new" \
        "${CARGO_TARGET_DIR:-target}/$target/release/postroom"
    mv "$out/postroom.new" "$out/postroom"
done

for target in "${targets[@]}"; do
    bin="${CARGO_TARGET_DIR:-target}/firmware/$target/postroom"
    size=$(stat -c %s "$bin")
    printf '%-28s %s  %d bytes (%d KiB)\n' "$target" "$bin" "$size" $((size / 1024))
done
