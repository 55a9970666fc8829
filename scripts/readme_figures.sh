#!/bin/sh
# The README's study example: run hidden-adam into results-readme/ and copy its figures to docs/.
# Run on an idle machine; takes a few minutes on 2 cores.
set -eu
out=${1:-results-readme}
ffnn-run study hidden-adam --repeats 3 --max-epochs 30 --train-size 10000 --val-size 2000 \
    --test-size 2000 --out "$out"
for name in curves test tradeoff predictions confusion; do
    cp "$out/hidden-adam/$name.png" "docs/study-hidden-adam-$name.png"
done
echo "table: $out/hidden-adam/report.md"
