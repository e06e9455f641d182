#!/usr/bin/env bash
# Install the vecext catalog at first start of the pgvector image
# (/docker-entrypoint-initdb.d runs this once, on an empty data directory).
#
# It applies exactly what `vecext install` applies: the base script
# vecext--X.sql, then each vecext--A--B.sql step of the upgrade chain, all in
# one transaction. The test suite runs this very file against the embedded
# server and compares the result with `vecext install`.
set -euo pipefail

sql_dir="${VECEXT_SQL_DIR:-/opt/vecext/sql/postgres}"
psql_bin="${PSQL:-psql}"
db="${POSTGRES_DB:-${PGDATABASE:-postgres}}"
user="${POSTGRES_USER:-${PGUSER:-postgres}}"

# oldest base script
base=$(cd "$sql_dir" && ls vecext--*.sql | grep -E '^vecext--[0-9]+\.[0-9]+\.[0-9]+\.sql$' | sort -V | head -n 1)
if [ -z "$base" ]; then
    echo "vecext: no base install script in $sql_dir" >&2
    exit 1
fi
files=("$sql_dir/$base")
version=${base#vecext--}
version=${version%.sql}
# walk the upgrade chain one step at a time
while step=$(cd "$sql_dir" && ls "vecext--$version--"*.sql 2>/dev/null | head -n 1) && [ -n "$step" ]; do
    files+=("$sql_dir/$step")
    version=${step#"vecext--$version--"}
    version=${version%.sql}
done

args=(-v ON_ERROR_STOP=1 --no-psqlrc --single-transaction --username "$user" --dbname "$db")
for f in "${files[@]}"; do
    args+=(-f "$f")
done
echo "vecext: installing catalog $version into database $db (${#files[@]} script(s))"
"$psql_bin" "${args[@]}"
