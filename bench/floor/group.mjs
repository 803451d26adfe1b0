// Groups `twiggy top -f csv` rows (every item of a `wasm-opt -Oz -g` build) by where the
// code comes from. Attribution is by the item's name after LTO and wasm-opt inlining: an
// export's body (its "multivalue shim", or the wrapper in this crate) holds whatever core code
// was inlined into it, so "exports" is the floor's own wrappers plus inlined core steps.
//
//   node group.mjs <twiggy.csv>
import { readFileSync } from "node:fs";

const rows = readFileSync(process.argv[2], "utf8").trim().split("\n").slice(1).map((line) => {
  // Name may be quoted (CSV, "" escapes); the size is the next field.
  const m = line.match(/^("(?:[^"]|"")*"|[^,]*),(\d+),/);
  // Crate disambiguators (`core[c5930c85a12de822]::`) vary with the flags: dropped.
  const name = m[1].replace(/^"|"$/g, "").replace(/""/g, '"').replace(/\[[0-9a-f]{16}\]/g, "");
  return { name, size: Number(m[2]) };
});

const groups = [
  ["debug names (-g only; not in the measured build)", (n) => n === '"function names" subsection' || /subsection|^custom section/.test(n)],
  ["rodata (strings: error texts, field names, tables)", (n) => /^data segment/.test(n)],
  ["exports: wrappers + inlined core steps", (n) => /multivalue shim$/.test(n) || /^edge_oauth_floor::/.test(n)],
  ["serde: derives of core types + JSON facade (JSON.parse walker)", (n) => /serde|edge_oauth_core::json|Deserialize|Serialize|Visitor/.test(n)],
  ["core: RFC steps (discovery, authorize, token, dpop, ...)", (n) => /edge_oauth_core/.test(n)],
  ["alloc + dlmalloc (Vec, String, BTreeMap, allocator)", (n) => /dlmalloc|alloc::|__rust_(alloc|realloc|dealloc)|__rdl_|btree|raw_vec|RawVec/.test(n)],
  ["fmt (Display/format!, padding)", (n) => /fmt|Formatter|Arguments|Write(r)?\b/.test(n)],
  ["sha2 + base64", (n) => /sha2|base64|compress256/.test(n)],
  ["url/form encoding (form_urlencoded, percent_encoding)", (n) => /form_urlencoded|percent_encoding/.test(n)],
  ["wasm-bindgen + js-sys glue (imports, externref, descriptors)", (n) => /wasm_bindgen|js_sys|__wbindgen|__wbg|^import |externref|__externref/.test(n)],
  ["wasm structure (tables, types, exports, headers)", (n) => /^(table|type|export|elem|global|memory|code section|"?[a-z ]+" (section|subsection))/i.test(n) || /section headers/.test(n)],
  ["std/core generic (closures, iterators, str, panics)", (n) => /^(core|std)\b|^<(core|std|&)|FnOnce|closure|panic|<T as /.test(n)],
  ["other", () => true],
];

const sums = new Map(groups.map(([g]) => [g, { bytes: 0, items: 0, top: [] }]));
for (const r of rows) {
  const [g] = groups.find(([, test]) => test(r.name));
  const s = sums.get(g);
  s.bytes += r.size;
  s.items += 1;
  if (s.top.length < 3) s.top.push(`${r.name.replace(/::h[0-9a-f]{16}$/, "")} ${r.size}`);
}
const total = rows.reduce((t, r) => t + r.size, 0);
const code = total - sums.get(groups[0][0]).bytes;
console.log(`| group | bytes | % of shipped | items | largest |`);
console.log(`|---|---:|---:|---:|---|`);
for (const [g] of groups) {
  const s = sums.get(g);
  if (!s.items) continue;
  const pct = g === groups[0][0] ? "-" : ((100 * s.bytes) / code).toFixed(1);
  console.log(`| ${g} | ${s.bytes} | ${pct} | ${s.items} | ${s.top.join("; ").replace(/\|/g, "\\|")} |`);
}
console.log(`| total without debug names | ${code} | 100 | | |`);
