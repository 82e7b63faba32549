# Shell functions the benchmark scripts share; sourced, not run.

# Creates schema NAME in the database BENCH_POSTGRES_URL names, and prints that URL with its
# search_path set to NAME: a fresh, empty keygate database every run, dropped by pg_schema_drop.
pg_schema_url() { # name
  local sep
  psql -qX -v ON_ERROR_STOP=1 "$BENCH_POSTGRES_URL" -c "CREATE SCHEMA $1" >/dev/null
  case "$BENCH_POSTGRES_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
  echo "${BENCH_POSTGRES_URL}${sep}options=-csearch_path%3D$1"
}

pg_schema_drop() { # name (nothing when empty)
  [ -z "$1" ] || psql -qX "$BENCH_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $1 CASCADE" >/dev/null 2>&1 || true
}
