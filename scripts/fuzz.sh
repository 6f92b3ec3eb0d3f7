#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and prints how many inputs each
# one executed.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]      default: 60 s, all targets
#
# cargo-fuzz passes nightly-only `-Z` flags to rustc; on a stable toolchain the script sets
# RUSTC_BOOTSTRAP=1 so the same flags are accepted. The sanitizer defaults to none (the
# fuzzed crates forbid unsafe code, so AddressSanitizer adds cost and little else); set
# FUZZ_SANITIZER=address to use it. A crash leaves its input in fuzz/artifacts/<target>/
# and makes the script exit non-zero: turn that input into a regression test.
set -euo pipefail

seconds="${1:-60}"
shift || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo/fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"
failed=0
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    if [ -d "seeds/$target" ]; then
        cp -n "seeds/$target"/* "$corpus"/ 2>/dev/null || true
    fi
    log="$(mktemp)"
    if cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=1
    fi
    runs="$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1 || true)"
    echo "$target: $status; ${runs:-no run summary}; corpus $(find "$corpus" -type f | wc -l) inputs"
    if [ "$status" = FAILED ]; then
        tail -n 40 "$log"
    fi
    rm -f "$log"
done
exit "$failed"
