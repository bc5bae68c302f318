#!/usr/bin/env bash
# Re-runs every experiment in full and writes its JSON result and figure here
# (docs/experiments/results/NAME.json and NAME.png), as the README's table shows them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/results"
mkdir -p "$here"
for name in $(bnfast run --list | cut -d' ' -f1); do
  start=$SECONDS
  bnfast run "$name" --json --no-progress --overwrite --plot "$here/$name.png" > "$here/$name.json"
  echo "$name: $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['verdict'])" "$here/$name.json") ($((SECONDS - start)) s)"
done
echo
python -m bnfast.experiments.results_table "$here"
