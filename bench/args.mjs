// The benchmarks' flags: `--name v1 v2 ...` (values up to the next --flag), or the default.
export function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const vals = [];
  for (let j = i + 1; j < process.argv.length && !process.argv[j].startsWith('--'); j++) vals.push(process.argv[j]);
  return vals;
}
