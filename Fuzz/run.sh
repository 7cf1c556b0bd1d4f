#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/Targets with swiftc (outside Package.swift: the library targets keep their
# build settings) and runs each for FUZZ_SECONDS, one after another.
#
#   FUZZ_SECONDS=600 Fuzz/run.sh                  every target, 10 minutes each
#   FUZZ_TARGETS="json-parser prompts" Fuzz/run.sh  some of them
#   Fuzz/run.sh --build                            build only
#
# Working corpora, crash inputs and logs go to .build-fuzz/; the committed seeds are Fuzz/Corpus/<target>.
# A crash stops that target (its input is saved as .build-fuzz/artifacts/<target>/crash-…), the others still run,
# and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFTC=${SWIFTC:-swiftc}
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
ALL_TARGETS="json-parser capture-header prompts safetensors arguments"
FUZZ_TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
OUT=.build-fuzz
MODULES=$OUT/modules
FLAGS=(-sanitize=fuzzer,address -O -g -parse-as-library -use-ld=lld)
SQLITE_FLAGS=(-I Sources/CSQLite $(pkg-config --cflags-only-I sqlite3 | sed 's/-I/-Xcc -I/g') -L "$(pkg-config --variable=libdir sqlite3)" -lsqlite3)
mkdir -p "$MODULES" "$OUT/bin"

# Builds module $1 from Sources/$1 (instrumented, testable) unless its object is newer than every source.
module() {
    local name=$1; shift
    local object=$MODULES/$name.o
    if [[ -f $object && -z $(find "Sources/$name" -name '*.swift' -newer "$object" | head -n 1) ]]; then return; fi
    echo "building module $name"
    # shellcheck disable=SC2046
    "$SWIFTC" "${FLAGS[@]}" -enable-testing -wmo -module-name "$name" -I "$MODULES" "$@" \
        -emit-module -emit-module-path "$MODULES/$name.swiftmodule" -c $(find "Sources/$name" -name '*.swift' | sort) -o "$object"
}

# Links the fuzz target $1 from Fuzz/Targets/$2 and the modules after it.
target() {
    local name=$1 source=$2; shift 2
    local binary=$OUT/bin/fuzz-$name objects=()
    for module in "$@"; do objects+=("$MODULES/$module.o"); done
    if [[ -f $binary && -z $(find "Fuzz/Targets/$source" Fuzz/Targets/Scratch.swift "${objects[@]}" -newer "$binary" | head -n 1) ]]; then
        return
    fi
    echo "linking fuzz-$name"
    "$SWIFTC" "${FLAGS[@]}" -I "$MODULES" Fuzz/Targets/Scratch.swift "Fuzz/Targets/$source" "${objects[@]}" \
        "${SQLITE_FLAGS[@]}" -o "$binary"
}

build() {
    module QKEngine
    case " $FUZZ_TARGETS " in *" arguments "*)
        module QKStore "${SQLITE_FLAGS[@]}"
        module QKCommands "${SQLITE_FLAGS[@]}" ;;
    esac
    for name in $FUZZ_TARGETS; do
        case $name in
            json-parser) target json-parser JSONParserFuzz.swift QKEngine ;;
            capture-header) target capture-header CaptureHeaderFuzz.swift QKEngine ;;
            prompts) target prompts PromptsFuzz.swift QKEngine ;;
            safetensors) target safetensors SafetensorsFuzz.swift QKEngine ;;
            arguments) target arguments ArgumentsFuzz.swift QKEngine QKStore QKCommands ;;
            *) echo "unknown fuzz target '$name' (targets: $ALL_TARGETS)" >&2; exit 64 ;;
        esac
    done
}

build
[[ ${1:-} == --build ]] && exit 0

status=0
summary=()
for name in $FUZZ_TARGETS; do
    case $name in
        arguments) dict=Fuzz/Dictionaries/arguments.dict; max_len=512 ;;
        *) dict=Fuzz/Dictionaries/json.dict; max_len=4096 ;;
    esac
    mkdir -p "$OUT/corpus/$name" "$OUT/artifacts/$name" "$OUT/logs"
    log=$OUT/logs/$name.log
    echo "fuzzing $name for $FUZZ_SECONDS s (log: $log)"
    if ! "$OUT/bin/fuzz-$name" "$OUT/corpus/$name" "Fuzz/Corpus/$name" -dict="$dict" -max_len=$max_len \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$name/" >"$log" 2>&1; then
        status=1
        echo "  CRASH: see $log and $OUT/artifacts/$name/"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    summary+=("$(printf '%-15s %12s runs %8s/s  %s' "$name" "${runs:-?}" "${rate:-?}" "${cov:-}")")
done
printf '%s\n' "${summary[@]}"
exit $status
