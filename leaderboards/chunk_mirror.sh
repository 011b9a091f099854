# Sourced by the long-run scripts of leaderboards/ (pool_generation.sh, math_code.sh, cap_study.sh).
#
# A long run writes each finished chunk atomically to RUN/parts/chunk-*.jsonl and resumes after the
# chunks it finds there. Its folder under runs/ is not committed, and a session ends its background
# jobs, so every finished chunk is mirrored, gzipped (-n: the same bytes for the same chunk), to a
# committed STORE/parts; a fresh checkout unpacks them back into RUN before the run starts, and the run
# resumes where the last session stopped. Both directions go through a temporary name and a rename,
# so a kill leaves no half-written chunk on either side. The run's settings file (which the run checks
# on resume) travels with the chunks.

# unpack_chunks STORE RUN [SETTINGS]: the committed chunks (and settings file, run_config.json by
# default) into the run's folder, where they are not there yet
unpack_chunks() {
    local store=$1 run=$2 settings=${3:-run_config.json} packed plain
    mkdir -p "$run/parts" "$store/parts"
    if [ -f "$store/$settings" ] && [ ! -f "$run/$settings" ]; then cp "$store/$settings" "$run/"; fi
    for packed in "$store"/parts/chunk-*.jsonl.gz; do
        [ -e "$packed" ] || continue
        plain="$run/parts/$(basename "$packed" .gz)"
        if [ ! -f "$plain" ]; then gunzip -c "$packed" > "$plain.unpacking" && mv "$plain.unpacking" "$plain"; fi
    done
    return 0
}

# pack_chunks RUN STORE [SETTINGS]: every finished chunk of the run into the store, once
pack_chunks() {
    local run=$1 store=$2 settings=${3:-run_config.json} plain packed
    mkdir -p "$store/parts"
    if [ -f "$run/$settings" ] && [ ! -f "$store/$settings" ]; then cp "$run/$settings" "$store/"; fi
    for plain in "$run"/parts/chunk-*.jsonl; do
        [ -e "$plain" ] || continue
        packed="$store/parts/$(basename "$plain").gz"
        if [ ! -f "$packed" ]; then gzip -n -c "$plain" > "$packed.packing" && mv "$packed.packing" "$packed"; fi
    done
    return 0
}
