# Sourced by the benchmark scripts that time their steps (dagger_recipe.sh, dagger_aimed.sh).
# timed NAME COMMAND...: run COMMAND once into $OUT/NAME.log, with wall/CPU time and the date
# and load before and after in $OUT/NAME.time; a failure is reported, not fatal.
timed() {
  local name=$1
  shift
  { date -u; uptime; } > "$OUT/$name.time"
  /usr/bin/time -a -o "$OUT/$name.time" -f "user %U s, system %S s, wall %e s" "$@" \
    > "$OUT/$name.log" 2>&1 || echo "failed: $name (see $OUT/$name.log)"
  { date -u; uptime; } >> "$OUT/$name.time"
}
