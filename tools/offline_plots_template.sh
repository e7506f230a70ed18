#!/usr/bin/env bash
# Write an HTML template for `dvc plots show --html-template` with vega, vega-lite and vega-embed
# inlined from their npm packages, so the plots render without internet (DVC's default page loads
# them from a CDN). The versions are the ones DVC's own page uses.
set -euo pipefail
out=${1:?usage: $0 OUTPUT.html}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts=""
for pkg in vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2; do
  name=${pkg%@*}
  mkdir -p "$tmp/$name"
  (cd "$tmp/$name" && npm pack --silent "$pkg" >/dev/null 2>&1 && tar xzf ./*.tgz)
  scripts+="<script>$(cat "$tmp/$name/package/build/$name.min.js")</script>"$'\n'
done
mkdir -p "$(dirname "$out")"
cat > "$out.tmp" <<HTML
<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  {refresh_tag}
  <title>bal: DVC plots</title>
  $scripts
  <style>body { font-family: sans-serif; } table { border-spacing: 15px; } img { max-width: 900px; }</style>
</head>
<body>
  {plot_divs}
</body>
</html>
HTML
mv "$out.tmp" "$out"
echo "wrote $out"
