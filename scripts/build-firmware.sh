#!/usr/bin/env bash
# Builds the static `postroom` binary for the firmware targets and prints each size.
#
# Needs: rustup's x86_64-unknown-linux-musl and aarch64-unknown-linux-musl targets
# (`rustup target add ...`), gcc for the C parts of crates on x86_64, and Debian's
# gcc-aarch64-linux-gnu for them on aarch64. aarch64 links with rust-lld, which ships with rustc.
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
base_rustflags=$RUSTFLAGS

for target in "${targets[@]}"; do
    RUSTFLAGS="$base_rustflags $(relr_flags "$target")" \
        cargo build --release --locked -p postroom --target "$target"
done

for target in "${targets[@]}"; do
    bin="${CARGO_TARGET_DIR:-target}/$target/release/postroom"
    size=$(stat -c %s "$bin")
    printf '%-28s %s  %d bytes (%d KiB)\n' "$target" "$bin" "$size" $((size / 1024))
done
