#!/usr/bin/env bash
# Re-runs every experiment in full and writes its JSON result and figure here
# (docs/experiments/results/NAME.json and NAME.png), as the README's table shows them.
# Each file is replaced only once its run has finished (--out, --plot): a failed or
# interrupted run leaves the committed one as it was.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/results"
mkdir -p "$here"
for name in $(bnfast run --list | cut -d' ' -f1); do
  start=$SECONDS
  bnfast run "$name" --no-progress --overwrite --out "$here/$name.json" \
    --plot "$here/$name.png" > /dev/null
  echo "$name: $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['verdict'])" "$here/$name.json") ($((SECONDS - start)) s)"
done
echo
python -m bnfast.experiments.results_table "$here"
