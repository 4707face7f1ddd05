// Writes tiktoken.golden.json: the token IDs that OpenAI's tiktoken (its Rust
// core, as the npm package "tiktoken" ships it compiled to WebAssembly) gives
// for each text of tiktoken.in.json. Run by `go test -run TestGolden -update`;
// needs Node.js and `npm install tiktoken@1.0.22` on NODE_PATH.
const fs = require("fs");
const path = require("path");
const { get_encoding } = require("tiktoken");

const dir = __dirname;
const texts = JSON.parse(fs.readFileSync(path.join(dir, "tiktoken.in.json"), "utf8"));
const names = ["o200k_base", "cl100k_base"];
const encs = names.map((n) => get_encoding(n));
const out = texts.map((text) => {
  const row = { text };
  names.forEach((n, i) => {
    row[n] = Array.from(encs[i].encode_ordinary(text));
  });
  return row;
});
encs.forEach((e) => e.free());
// One text per line keeps diffs readable.
fs.writeFileSync(path.join(dir, "tiktoken.golden.json"), "[\n" + out.map((r) => JSON.stringify(r)).join(",\n") + "\n]\n");
