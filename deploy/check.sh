#!/usr/bin/env bash
# Checks deploy/'s Prometheus rules and Grafana dashboard with the real tools: promtool
# (Debian's `prometheus` package) and jq. .ci/run installs them when missing.
#   - the rules load, and their unit tests (prometheus-rules.test.yaml) pass;
#   - the dashboard is JSON with what Grafana needs to import it (ids, positions, the
#     data source variable on every query), and every query in it is valid PromQL.
# That every metric they name is one the gateway exports is checked by
# tests/integration/deploy.rs, against a running gateway.
set -euo pipefail
cd "$(dirname "$0")"

promtool check rules prometheus-rules.yaml
promtool test rules prometheus-rules.test.yaml

dashboard=grafana-dashboard.json
jq -e '
  (.uid | type == "string") and (.title | type == "string") and (.schemaVersion >= 36)
  and ([.templating.list[] | select(.name == "datasource" and .type == "datasource")] | length == 1)
  and ([.panels[].id] | length == (unique | length))
  and all(.panels[]; .gridPos.h > 0 and .gridPos.w > 0 and .gridPos.x >= 0 and .gridPos.y >= 0
                     and (.type | IN("row", "timeseries", "table", "stat")))
  and all(.panels[] | select(.type != "row"); .datasource.uid == "${datasource}"
          and (.targets | length > 0)
          and all(.targets[]; .datasource.uid == "${datasource}" and (.refId | type == "string")
                               and (.expr | type == "string")))
' "$dashboard" >/dev/null || { echo "$dashboard: not an importable dashboard" >&2; exit 1; }

# Every query (and every variable's label_values selector) as a recording rule, with the
# dashboard's variables replaced by what Grafana sends, so promtool parses each one.
queries=$(mktemp "${TMPDIR:-/tmp}/mcpwarden-dashboard-queries.XXXXXX")
trap 'rm -f "$queries"' EXIT
jq '
  def grafana: gsub("\\$__rate_interval"; "5m") | gsub("\\$(instance|workspace|key)"; ".*");
  [ (.panels[] | .targets[]? | .expr),
    (.templating.list[] | select(.type == "query") | .definition
       | capture("^label_values\\((?<selector>.*),\\s*[a-z_]+\\)$").selector) ]
  | {groups: [{name: "dashboard", rules: (to_entries
      | map({record: "dashboard:query_\(.key)", expr: (.value | grafana)}))}]}
' "$dashboard" >"$queries"
promtool check rules "$queries" | sed "s|$queries|$dashboard queries|"
echo "deploy/: rules, rule tests and dashboard OK"
